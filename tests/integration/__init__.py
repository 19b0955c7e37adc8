"""Integration tests: the unchanged app, the real SDKs, the dev kit's emulators."""
