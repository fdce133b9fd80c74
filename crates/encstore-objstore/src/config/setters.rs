//! The setters the builders share, as macros expanded in each builder's
//! `impl`. They name everything by its full path, so an expansion site needs
//! no imports for them.

/// Implements the setters every builder shares.
macro_rules! common_setters {
    () => {
        /// Keys live at `prefix/key`. Leading and trailing slashes are ignored; the
        /// rest must be a valid key (checked by `build`).
        pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
            self.common.prefix = crate::config::common::trim_prefix(&prefix.into());
            self
        }

        /// How long a lock lease lasts without renewal (default
        /// [`DEFAULT_LEASE`](crate::DEFAULT_LEASE); between 100 ms and 24 h,
        /// checked by `build`). Holders renew every third of it. Keep it far above
        /// the clock skew between hosts and above the request timeout.
        pub fn lease_duration(mut self, lease: ::std::time::Duration) -> Self {
            self.common.lease = lease;
            self
        }

        /// Deadline of one storage operation, all its requests and retries included
        /// (default
        /// [`DEFAULT_OPERATION_TIMEOUT`](crate::DEFAULT_OPERATION_TIMEOUT)). Past
        /// it the operation fails with
        /// [`Error::Timeout`](encstore_core::Error::Timeout).
        pub fn operation_timeout(mut self, timeout: ::std::time::Duration) -> Self {
            self.common.operation_timeout = timeout;
            self
        }

        stream_setters!();
    };
}

/// Implements the setters of streamed writes.
macro_rules! stream_setters {
    () => {
        /// The part size of streamed writes (default
        /// [`DEFAULT_PART_SIZE`](crate::DEFAULT_PART_SIZE), at most
        /// [`MAX_PART_SIZE`](crate::MAX_PART_SIZE)): a body of at most this size is
        /// one `PUT`, a larger one a multipart upload of parts of this size, of
        /// which [`upload_concurrency`](Self::upload_concurrency) are held in
        /// memory at once. One upload has at most 10,000 parts, so this bounds the
        /// largest streamed object (80 GiB by default). The S3 and URL builders
        /// refuse less than [`MIN_PART_SIZE`](crate::MIN_PART_SIZE), which S3
        /// servers require; a store you built may take smaller parts.
        pub fn part_size(mut self, bytes: usize) -> Self {
            self.common.stream.part_size = bytes;
            self
        }

        /// How many parts of one streamed write are uploaded at once (default
        /// [`DEFAULT_UPLOAD_CONCURRENCY`](crate::DEFAULT_UPLOAD_CONCURRENCY),
        /// 1..=64).
        pub fn upload_concurrency(mut self, parts: usize) -> Self {
            self.common.stream.concurrency = parts;
            self
        }

        /// The largest conditional streamed write
        /// ([`store_stream_if`](encstore_core::Storage::store_stream_if)) that is
        /// buffered in memory and sent as one conditional `PUT` when the store
        /// cannot complete a multipart upload conditionally (default
        /// [`DEFAULT_MAX_BUFFERED_CONDITIONAL_WRITE`](crate::DEFAULT_MAX_BUFFERED_CONDITIONAL_WRITE)).
        /// Larger bodies are refused there with
        /// [`Error::Unsupported`](encstore_core::Error::Unsupported), writing
        /// nothing. S3 stores built by this crate on a server that honours
        /// conditional completions stream any size in constant memory.
        pub fn max_buffered_conditional_write(mut self, bytes: u64) -> Self {
            self.common.stream.max_buffered_conditional = bytes;
            self
        }

        /// Whether conditional streamed writes larger than one part put their
        /// condition on the multipart completion (constant memory) or are buffered:
        /// see [`ConditionalCompletion`](crate::ConditionalCompletion) (default
        /// [`ConditionalCompletion::Auto`](crate::ConditionalCompletion::Auto): on
        /// AWS S3 only). Only the S3 stores this crate builds can send such a
        /// condition; elsewhere this has no effect.
        pub fn conditional_completion(mut self, mode: crate::ConditionalCompletion) -> Self {
            self.common.stream.completion = mode;
            self
        }
    };
}

/// Implements the setters of the builders that make an HTTP client.
macro_rules! client_setters {
    () => {
        /// Timeout of one HTTP request (default: the environment's, else
        /// [`DEFAULT_REQUEST_TIMEOUT`](crate::DEFAULT_REQUEST_TIMEOUT)).
        pub fn request_timeout(mut self, timeout: ::std::time::Duration) -> Self {
            self.common.request_timeout = Some(timeout);
            self
        }

        /// Timeout of establishing a connection (default: the environment's, else
        /// [`DEFAULT_CONNECT_TIMEOUT`](crate::DEFAULT_CONNECT_TIMEOUT)).
        pub fn connect_timeout(mut self, timeout: ::std::time::Duration) -> Self {
            self.common.connect_timeout = Some(timeout);
            self
        }

        /// Retries on transient failures (connection errors, 5xx, 429, and timeouts
        /// of idempotent requests), with exponential back-off (default
        /// [`default_retry`](crate::default_retry)).
        pub fn retry(mut self, retry: ::object_store::RetryConfig) -> Self {
            self.common.retry = Some(retry);
            self
        }

        /// Allows (or forbids) a plain `http://` endpoint, overriding the
        /// environment (`AWS_ALLOW_HTTP`, ...). For a server on loopback or another
        /// trusted network only.
        pub fn allow_http(mut self, allow: bool) -> Self {
            self.common.allow_http = Some(allow);
            self
        }

        /// Any other configuration key of `object_store`'s builder for this store
        /// (`AmazonS3ConfigKey`, `GoogleConfigKey` or `AzureConfigKey` names, such
        /// as `aws_virtual_hosted_style_request`), applied after the environment.
        /// The value is kept as a secret and never shown. An unknown key fails
        /// `build`.
        pub fn option(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
            self.common
                .options
                .push((key.into(), ::secrecy::SecretString::from(value.into())));
            self
        }
    };
}
