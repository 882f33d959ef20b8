"""A local test bed: moto for S3 and our own COS and OSS servers, with fault injection and request logs."""
