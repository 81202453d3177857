"""moto_server whose conditional object writes are atomic, as Amazon S3's are.

moto answers `If-None-Match: *` by looking the key up and then storing the object, in one of the
threads of its threaded server: two creates of one key that arrive together can both pass the
look-up, and the second replaces the first. Amazon S3 does not let that happen (S3 User Guide,
"Add preconditions to S3 operations with conditional requests": of concurrent conditional writes
to one key, one succeeds and the others get 412 Precondition Failed). patchtrail's create-only
probe races two creates on purpose to refuse look-alikes that check first and write after, so
against plain moto it fails now and then. This starts moto's own server unchanged except that the
handlers that store an object (PutObject, CompleteMultipartUpload) run one at a time.

Usage: moto_s3_server.py -H 127.0.0.1 -p PORT (moto_server's own arguments).
"""

import threading

from moto.s3.responses import S3Response
from moto.server import main

_WRITES = threading.Lock()


def _one_at_a_time(handler):
    def locked(self, *args, **kwargs):
        with _WRITES:
            return handler(self, *args, **kwargs)

    return locked


S3Response.put_object = _one_at_a_time(S3Response.put_object)
S3Response._key_response_post = _one_at_a_time(S3Response._key_response_post)

if __name__ == "__main__":
    main()
