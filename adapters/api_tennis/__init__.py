"""API-Tennis (api-tennis.com): live scores pushed as snapshots. ``snapshots`` turns them into the feed's match
messages (one a point, a resync when points were skipped, the end with its outcome); ``vendor`` builds the
vendor's snapshots from real point-by-point data, for the local stand-in and the tests."""
