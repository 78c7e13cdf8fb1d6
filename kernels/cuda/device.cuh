// CUDA device discovery: what the build supports and what the machine has.
// Built from device.cu when loom is compiled with CUDA, from device_stub.cpp otherwise, so callers
// never need #ifdefs.
#pragma once
#include <string>

namespace loom::kernels::cuda {

// True when this build contains CUDA kernels.
bool compiled();
// Architectures compiled for, e.g. "sm_80 sm_90" ("" without CUDA).
std::string architectures();
// Number of usable CUDA devices (0 without CUDA, without a driver, or without a GPU).
int device_count();
// "NVIDIA H100 80GB HBM3 (sm_90, 79.1 GiB)" for device `i`, or "" when there is none.
std::string device_name(int i);
// Runs a trivial kernel on device 0 writing 0..n-1 into host_out; false on any failure.
bool smoke_test(int* host_out, int n);

}  // namespace loom::kernels::cuda
