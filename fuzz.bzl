"""xr_fuzz_target: one fuzz entry point, two builds.

  NAME          libFuzzer binary (clang-14, `bazel build --config=fuzz //pkg:NAME`); manual.
  NAME_replay   a cc_test that runs every file of the seed corpus through the entry point
                with the default toolchain, so `bazel test //...` keeps the target honest.
"""

load("//:copts.bzl", "XR_TEST_COPTS")

def xr_fuzz_target(name, srcs, deps, corpus):
    native.cc_library(
        name = name + "_lib",
        testonly = True,
        srcs = srcs,
        copts = XR_TEST_COPTS,
        deps = deps,
        alwayslink = 1,
    )
    native.cc_test(
        name = name + "_replay",
        deps = [":" + name + "_lib", "//third_party:fuzz_replay_main"],
        data = native.glob([corpus + "/**"]),
        args = [native.package_name() + "/" + corpus],
        copts = XR_TEST_COPTS,
    )
    native.cc_binary(
        name = name,
        testonly = True,
        deps = [":" + name + "_lib"],
        linkopts = ["-fsanitize=fuzzer"],
        tags = ["manual"],
    )
