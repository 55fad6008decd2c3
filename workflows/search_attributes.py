"""Typed search attributes every workflow sets so admins can filter in the Temporal Web UI.

Values are ids and statuses only: search attributes are not encrypted, so no personal data.
"""

from temporalio.common import SearchAttributeKey

ENTITY_ID = SearchAttributeKey.for_keyword("TollgateEntityId")
ENTITY_TYPE = SearchAttributeKey.for_keyword("TollgateEntityType")
CUSTOMER_ID = SearchAttributeKey.for_keyword("TollgateCustomerId")
STATUS = SearchAttributeKey.for_keyword("TollgateStatus")
BOOKING_ID = SearchAttributeKey.for_keyword("TollgateBookingId")
DRIVER_ID = SearchAttributeKey.for_keyword("TollgateDriverId")

ALL = (ENTITY_ID, ENTITY_TYPE, CUSTOMER_ID, STATUS, BOOKING_ID, DRIVER_ID)
