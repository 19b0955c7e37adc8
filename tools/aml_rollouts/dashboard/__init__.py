"""``aml-rollouts dashboard``: a small read-only web page on 127.0.0.1 that proxies the app's operator API."""
