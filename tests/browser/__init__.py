"""Browser tests of the web console."""
