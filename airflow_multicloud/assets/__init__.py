"""Asset URIs for COS (``cos://``, ``cosn://``) and OSS (``oss://``), registered through the provider info."""
