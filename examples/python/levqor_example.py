"""Embedding Levqor from Python with the standard library's ctypes: open it (in memory, or on
the database named by the second argument), make a user and a key, screen a text, price and
submit a job, run it with the manual engine, and read its result.

    cargo build -p levqor-ffi
    python3 examples/python/levqor_example.py target/debug/liblevqor_ffi.so [sqlite:example.db]
"""

import ctypes
import json
import sys

OK = 0
VERDICTS = {0: "allow", 1: "warn", 2: "hold", 3: "block"}


class LevqorError(Exception):
    def __init__(self, status, code, message):
        super().__init__(f"status {status}, {code}: {message}")
        self.status, self.code = status, code


class Levqor:
    """One open Levqor (a `levqor_t`), closed by `close` or at the end of a `with` block."""

    def __init__(self, library, config):
        lib = ctypes.CDLL(library)
        c_str, out_str = ctypes.c_char_p, ctypes.POINTER(ctypes.c_void_p)
        handle = ctypes.c_void_p
        lib.levqor_last_error.restype = c_str
        lib.levqor_last_error_code.restype = c_str
        lib.levqor_string_free.argtypes = [ctypes.c_void_p]
        lib.levqor_string_free.restype = None
        signatures = {
            "levqor_open": [c_str, ctypes.POINTER(handle)],
            "levqor_close": [handle],
            "levqor_user_create": [handle, c_str, out_str],
            "levqor_key_create": [handle, c_str, out_str],
            "levqor_screen": [handle, c_str, ctypes.POINTER(ctypes.c_uint32), out_str],
            "levqor_quote": [handle, c_str, c_str, ctypes.POINTER(ctypes.c_int64), out_str],
            "levqor_submit": [handle, c_str, c_str, out_str, out_str],
            "levqor_run_due": [handle, ctypes.c_uint32, ctypes.POINTER(ctypes.c_uint32)],
            "levqor_job_get": [handle, c_str, c_str, out_str, out_str],
            "levqor_credit_balance": [handle, c_str, ctypes.POINTER(ctypes.c_int64), out_str],
        }
        for name, argtypes in signatures.items():
            getattr(lib, name).argtypes = argtypes
            getattr(lib, name).restype = ctypes.c_uint32
        self.lib = lib
        self.handle = handle()
        self._call("levqor_open", json.dumps(config).encode(), ctypes.byref(self.handle))

    def _call(self, name, *args):
        status = getattr(self.lib, name)(*args)
        if status != OK:
            code = self.lib.levqor_last_error_code().decode()
            raise LevqorError(status, code, self.lib.levqor_last_error().decode())

    def _string_call(self, name, *args):
        """Calls a function whose last argument is a `char **` out; returns the string."""
        out = ctypes.c_void_p()
        self._call(name, *args, ctypes.byref(out))
        try:
            return ctypes.string_at(out.value).decode()
        finally:
            self.lib.levqor_string_free(out)

    def create_user(self, email):
        return self._string_call("levqor_user_create", self.handle, email.encode())

    def create_key(self, user_id):
        return self._string_call("levqor_key_create", self.handle, user_id.encode())

    def screen(self, text):
        verdict = ctypes.c_uint32()
        report = self._string_call(
            "levqor_screen", self.handle, text.encode(), ctypes.byref(verdict)
        )
        return VERDICTS[verdict.value], json.loads(report)

    def quote(self, key, workflow):
        return json.loads(
            self._string_call(
                "levqor_quote", self.handle, key.encode(), json.dumps(workflow).encode(), None
            )
        )

    def submit(self, key, request):
        answer = self._string_call(
            "levqor_submit", self.handle, key.encode(), json.dumps(request).encode(), None
        )
        return json.loads(answer)

    def run_due(self, max_jobs=10):
        ran = ctypes.c_uint32()
        self._call("levqor_run_due", self.handle, max_jobs, ctypes.byref(ran))
        return ran.value

    def job(self, key, job_id):
        answer = self._string_call(
            "levqor_job_get", self.handle, key.encode(), job_id.encode(), None
        )
        return json.loads(answer)

    def balance(self, key):
        answer = self._string_call("levqor_credit_balance", self.handle, key.encode(), None)
        return json.loads(answer)

    def close(self):
        if self.handle:
            self._call("levqor_close", self.handle)
            self.handle = ctypes.c_void_p()

    def __enter__(self):
        return self

    def __exit__(self, *_):
        self.close()


def main():
    library = sys.argv[1]
    database = sys.argv[2] if len(sys.argv) > 2 else "memory"
    with Levqor(library, {"database_url": database, "signup_credits": 1000}) as lq:
        key = lq.create_key(lq.create_user("python-example@example.com"))
        verdict, _ = lq.screen("please summarise this report")
        print(f"screening: {verdict}")
        workflow = {
            "name": "greet",
            "steps": [{"id": "hello", "type": "log", "message": "hello {{input.name}}"}],
        }
        print(f"price: {lq.quote(key, workflow)['credits']} credits")
        job = lq.submit(key, {"workflow": workflow, "input": {"name": "Python"}})
        try:
            lq.submit(key, {"workflow": 7})
        except LevqorError as e:
            print(f"a bad workflow: {e.code}")
        ran = lq.run_due()
        job = lq.job(key, job["id"])
        print(f"ran {ran} job(s); job {job['id']}: {job['status']} -> {json.dumps(job['result'])}")
        print(f"credits left: {lq.balance(key)['available']}")
        return 0 if job["status"] == "succeeded" and job["result"]["hello"]["message"] == "hello Python" else 2


if __name__ == "__main__":
    sys.exit(main())
