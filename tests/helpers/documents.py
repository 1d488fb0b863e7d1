"""Subscription documents the WebSocket tests send."""

ACTIVITY_ADDED = (
    "subscription($u: String!) { activityAdded(userId: $u) { id userId seq type timestamp } }"
)
STATUS_CHANGED = (
    "subscription($u: String!) { userStatusChanged(userId: $u) { userId alertLevel version } }"
)
FEED = "subscription { activityFeedAdded { userId seq type } }"
