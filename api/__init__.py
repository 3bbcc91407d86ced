"""The HTTP gateway: a thin Flask app under gunicorn that fans questions out to the shards."""
