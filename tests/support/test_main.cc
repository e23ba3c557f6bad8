// gtest main for single-process test binaries: one intra-op thread so tests do not
// fight each other (ctest -j) and results do not depend on the machine's core count.
#include <gtest/gtest.h>

#include "common/runtime.h"

int main(int argc, char** argv) {
  testing::InitGoogleTest(&argc, argv);
  distrnn::common::SetComputeThreads(1);
  return RUN_ALL_TESTS();
}
