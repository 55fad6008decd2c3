// SPDX-License-Identifier: MIT
pragma solidity ^0.8.20;

/// @title Anchor
/// @notice Publishes the Merkle root of each batch of Tollgate tickets, so anyone holding a
/// ticket and its proof can check that it was issued, and when, without trusting Tollgate.
contract Anchor {
    address public owner;

    /// @notice Timestamp of the block that anchored `root`; zero if it never was.
    mapping(bytes32 root => uint256 timestamp) public anchoredAt;

    /// @notice Root anchored for `batchId`; zero if none yet.
    mapping(uint256 batchId => bytes32 root) public batchRoot;

    event Anchored(
        uint256 indexed batchId,
        bytes32 indexed root,
        uint256 leafCount,
        uint256 anchoredAt
    );
    event OwnershipTransferred(address indexed previousOwner, address indexed newOwner);

    error NotOwner(address caller);
    error ZeroRoot();
    error ZeroLeafCount();
    error ZeroAddress();
    error BatchAlreadyAnchored(uint256 batchId, bytes32 root);
    error RootAlreadyAnchored(bytes32 root, uint256 anchoredAt);

    constructor() {
        owner = msg.sender;
        emit OwnershipTransferred(address(0), msg.sender);
    }

    modifier onlyOwner() {
        if (msg.sender != owner) revert NotOwner(msg.sender);
        _;
    }

    /// @notice Records `root` as the Merkle root of the `leafCount` tickets of `batchId`.
    /// @dev Both the batch and the root are write-once, so a resent transaction cannot
    /// rewrite history; the errors carry the stored values so a sender can tell its own
    /// earlier success from a conflict.
    function anchor(uint256 batchId, bytes32 root, uint256 leafCount) external onlyOwner {
        if (root == bytes32(0)) revert ZeroRoot();
        if (leafCount == 0) revert ZeroLeafCount();
        bytes32 existing = batchRoot[batchId];
        if (existing != bytes32(0)) revert BatchAlreadyAnchored(batchId, existing);
        uint256 previous = anchoredAt[root];
        if (previous != 0) revert RootAlreadyAnchored(root, previous);

        batchRoot[batchId] = root;
        anchoredAt[root] = block.timestamp;
        emit Anchored(batchId, root, leafCount, block.timestamp);
    }

    function transferOwnership(address newOwner) external onlyOwner {
        if (newOwner == address(0)) revert ZeroAddress();
        emit OwnershipTransferred(owner, newOwner);
        owner = newOwner;
    }
}
