"""Test helpers shared by the test suites and bench/ (local servers, fixtures)."""
