// Stand-in for device.cu in builds without CUDA.
#include "kernels/cuda/device.cuh"

namespace loom::kernels::cuda {
bool compiled() { return false; }
std::string architectures() { return ""; }
int device_count() { return 0; }
std::string device_name(int) { return ""; }
bool smoke_test(int*, int) { return false; }
}  // namespace loom::kernels::cuda
