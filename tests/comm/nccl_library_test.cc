// The real NCCL library in this process (built only with NCCL; needs no GPU): it is
// the copy cmake/FindNCCL.cmake selected (the wheel's nvidia/nccl, the one libtorch
// loads), and the start-up version guard passes against the nccl.h we compiled with.
// The loader's view of the distrnn binary itself is checked by
// cmake/CheckNcclResolution.cmake (CTest nccl_resolution).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>

#include "comm/communicator_factory.h"
#include "comm/nccl_api.h"

namespace distrnn::testing {
namespace {

using ::testing::HasSubstr;

std::string Canonical(const std::string& path) {
  std::error_code ec;
  const auto p = std::filesystem::canonical(path, ec);
  return ec ? path : p.string();
}

TEST(NcclLibrary, TheLoadedLibraryIsTheOneFindNcclSelected) {
  absl::StatusOr<std::shared_ptr<comm::NcclApi>> api = comm::MakeNcclApi();
  ASSERT_TRUE(api.ok()) << api.status();
  const std::string loaded = (*api)->LibraryPath();
  ASSERT_FALSE(loaded.empty());
  EXPECT_EQ(Canonical(loaded), Canonical(DISTRNN_EXPECTED_NCCL_LIBRARY));
  EXPECT_EQ(Canonical(loaded).find("/usr/local/cuda"), std::string::npos) << "the CUDA toolkit's NCCL was loaded";
}

TEST(NcclLibrary, VersionGuardPasses) {
  absl::StatusOr<std::shared_ptr<comm::NcclApi>> api = comm::MakeNcclApi();
  ASSERT_TRUE(api.ok()) << api.status();
  EXPECT_TRUE(comm::CheckNcclVersion(**api).ok()) << comm::CheckNcclVersion(**api);
  int runtime = 0;
  ASSERT_EQ((*api)->GetVersion(&runtime), comm::NcclResult::kSuccess);
  EXPECT_EQ((*api)->CompiledVersion(), DISTRNN_EXPECTED_NCCL_VERSION_CODE);
  EXPECT_EQ(comm::DecodeNcclVersion(runtime).minor, comm::DecodeNcclVersion(DISTRNN_EXPECTED_NCCL_VERSION_CODE).minor);
  EXPECT_THAT(comm::DescribeNccl(), HasSubstr("NCCL " + comm::NcclVersionString(runtime)));
  EXPECT_THAT(comm::DescribeNccl(), HasSubstr("compiled against " +
                                              comm::NcclVersionString(DISTRNN_EXPECTED_NCCL_VERSION_CODE)));
  EXPECT_TRUE(comm::NcclBuilt());
}

}  // namespace
}  // namespace distrnn::testing
