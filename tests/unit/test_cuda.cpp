// CUDA toolchain and device smoke test (ctest label: unit; skipped with a reason where no GPU).
#include <gtest/gtest.h>

#include <vector>

#include "kernels/cuda/device.cuh"

using namespace loom::kernels;

TEST(Cuda, BuildReportsArchitectures) {
  if (!cuda::compiled()) GTEST_SKIP() << "built without CUDA (LOOM_CUDA=OFF or no nvcc)";
  EXPECT_NE(cuda::architectures().find("sm_"), std::string::npos);
}

TEST(Cuda, KernelRunsOnTheDevice) {
  if (!cuda::compiled()) GTEST_SKIP() << "built without CUDA (LOOM_CUDA=OFF or no nvcc)";
  if (cuda::device_count() == 0) GTEST_SKIP() << "no CUDA device on this machine (CUDA tests run on the GPU machine)";
  std::vector<int> out(1000, -1);
  ASSERT_TRUE(cuda::smoke_test(out.data(), static_cast<int>(out.size())));
  for (int i = 0; i < 1000; ++i) ASSERT_EQ(out[i], i);
  std::printf("device 0: %s\n", cuda::device_name(0).c_str());
}
