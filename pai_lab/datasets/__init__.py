"""The dataset registry: datasets from local folders, S3/OSS prefixes, manifests and samples,
immutable versions by reference, diffs, drift checks and readers (pandas, tf.data)."""
