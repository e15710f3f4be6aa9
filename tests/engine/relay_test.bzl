"""The relay's end-to-end script tests: NAME.py run by py_test.sh against real programs."""

_BACKENDS = [("", ["--io=uring"]), ("_epoll", ["--io=epoll"])]

def relay_script_test(name, tools, lib = True, io_backends = False, size = "medium", tags = []):
    """sh_test NAME running NAME.py with the path of each of `tools` as arguments, in order.

    lib: the script imports relay_lib (and tests/interop/wire.py).
    io_backends: once per I/O backend: NAME with --io=uring, NAME_epoll with --io=epoll.
    tags: the sh_test's tags (["no-sandbox"] for a test that runs a program as another user).
    """
    for suffix, io_args in (_BACKENDS if io_backends else [("", [])]):
        native.sh_test(
            name = name + suffix,
            size = size,
            tags = tags,
            srcs = ["py_test.sh"],
            args = ["$(location %s.py)" % name] + ["$(location %s)" % t for t in tools] + io_args,
            data = [name + ".py"] + (["relay_lib.py", "//:tests/interop/wire.py"] if lib else []) + tools,
        )
