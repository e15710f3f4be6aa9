"""Compiler flags shared by every target in the project."""

XR_COPTS = [
    "-std=c++20",
    "-Wall",
    "-Wextra",
    "-Werror",
    "-Wno-unused-parameter",
    "-Wno-missing-field-initializers",
]

# Test sources (not the code under test) compile at -O0 in the ASan+UBSan tree
# (--config=sanitize): there, clang needs about 3x longer for a doctest file at -O1, and the
# test bodies gain nothing from optimising. Libraries and binaries keep the config's -O1.
XR_TEST_OPT = select({
    "//:sanitize_build": ["-O0"],
    "//conditions:default": [],
})

# Tests and fuzzers include doctest / libFuzzer headers that trip some warnings.
XR_TEST_COPTS = XR_COPTS + ["-Wno-unused-function"] + XR_TEST_OPT
