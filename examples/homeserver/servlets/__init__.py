"""The Client-Server API servlets, by area: account, rooms, sync."""
