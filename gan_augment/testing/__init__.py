"""Test support shared by the test suite and the benchmarks, not part of the user-facing API:
a real S3 endpoint on loopback (moto's server) and a fault-injecting proxy in front of it.
Needs the `test` extra (moto, boto3).
"""

from gan_augment.testing.servers import (
                                         TEST_CREDENTIALS,
                                         FaultProxy,
                                         s3_client,
                                         s3_storage_options,
                                         serve_in_subprocess,
                                         start_fault_proxy,
                                         start_moto_server,
)

__all__ = ["TEST_CREDENTIALS", "FaultProxy", "s3_client", "s3_storage_options", "serve_in_subprocess",
           "start_fault_proxy", "start_moto_server"]
