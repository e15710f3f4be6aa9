"""Compiler flags shared by every target in the project."""

XR_COPTS = [
    "-std=c++20",
    "-Wall",
    "-Wextra",
    "-Werror",
    "-Wno-unused-parameter",
    "-Wno-missing-field-initializers",
]

# Tests and fuzzers include doctest / libFuzzer headers that trip some warnings.
XR_TEST_COPTS = XR_COPTS + ["-Wno-unused-function"]
