#include <cuda_runtime.h>

#include <cstdio>
#include <string>

#include "kernels/cuda/device.cuh"
#include "loom/build_info.h"

namespace loom::kernels::cuda {

namespace {
// A trivial kernel, launched by the CUDA tests to prove the toolchain and driver work end to end.
__global__ void fill_iota(int* out, int n) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) out[i] = i;
}
}  // namespace

bool compiled() { return true; }

std::string architectures() {
  std::string s, archs = LOOM_CUDA_ARCHS;
  size_t start = 0;
  while (start <= archs.size()) {
    size_t semi = archs.find(';', start);
    if (semi == std::string::npos) semi = archs.size();
    if (semi > start) s += (s.empty() ? "sm_" : " sm_") + archs.substr(start, semi - start);
    start = semi + 1;
  }
  return s;
}

int device_count() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    cudaGetLastError();
    return 0;
  }
  return n;
}

std::string device_name(int i) {
  cudaDeviceProp p{};
  if (cudaGetDeviceProperties(&p, i) != cudaSuccess) return "";
  char buf[512];
  std::snprintf(buf, sizeof buf, "%s (sm_%d%d, %.1f GiB)", p.name, p.major, p.minor,
                static_cast<double>(p.totalGlobalMem) / (1024.0 * 1024 * 1024));
  return buf;
}

// Used by tests/unit/test_cuda.cpp: fills out[0..n) with 0..n-1 on device 0; false on any failure.
bool smoke_test(int* host_out, int n) {
  int* d = nullptr;
  if (cudaMalloc(&d, n * sizeof(int)) != cudaSuccess) return false;
  fill_iota<<<(n + 255) / 256, 256>>>(d, n);
  bool ok = cudaGetLastError() == cudaSuccess &&
            cudaMemcpy(host_out, d, n * sizeof(int), cudaMemcpyDeviceToHost) == cudaSuccess;
  cudaFree(d);
  return ok;
}

}  // namespace loom::kernels::cuda
