# Finds every third-party dependency once, so module CMakeLists only link targets.
# Torch comes from the pinned PyPI wheel; launch/setup.sh passes its cmake prefix
# (torch.utils.cmake_prefix_path) in CMAKE_PREFIX_PATH.

# The wheel is CUDA-enabled: its TorchConfig needs the CUDA toolkit to configure.
if(NOT DEFINED CMAKE_CUDA_COMPILER AND EXISTS /usr/local/cuda/bin/nvcc)
  set(CMAKE_CUDA_COMPILER /usr/local/cuda/bin/nvcc)
endif()
if(NOT DEFINED CUDAToolkit_ROOT AND EXISTS /usr/local/cuda)
  set(CUDAToolkit_ROOT /usr/local/cuda)
endif()
# Without an arch list Torch's config try_runs a GPU probe, which fails without a GPU
# (and with CMake 3.25's CUDA20 support); we compile no CUDA kernels ourselves.
if(NOT DEFINED TORCH_CUDA_ARCH_LIST AND NOT DEFINED ENV{TORCH_CUDA_ARCH_LIST})
  set(TORCH_CUDA_ARCH_LIST "7.5;8.0;8.6;9.0")
endif()
find_package(Torch REQUIRED)
find_package(MPI REQUIRED COMPONENTS C)
find_package(absl REQUIRED)
find_package(nlohmann_json 3 REQUIRED)
find_package(Threads REQUIRED)
if(DISTRNN_BUILD_TESTS)
  find_package(GTest REQUIRED)
endif()
if(DISTRNN_BUILD_BENCH)
  find_package(benchmark REQUIRED)
endif()

# Torch's exported target carries its compile flags (ABI, include dirs); wrap it
# so modules link one name.
add_library(distrnn_torch INTERFACE)
target_link_libraries(distrnn_torch INTERFACE ${TORCH_LIBRARIES})
target_include_directories(distrnn_torch INTERFACE ${TORCH_INCLUDE_DIRS})

# The wheel's CUDA libraries (NCCL, cuDNN, cuBLAS, ...) live in site-packages/nvidia/*/lib
# and libtorch_cuda.so has no RUNPATH to them (Python preloads them). Link against those,
# not older copies in /usr/local/cuda, and find them at run time through the executable's
# DT_RPATH, which unlike DT_RUNPATH also serves libtorch's own dependencies.
get_filename_component(DISTRNN_SITE_PACKAGES "${TORCH_INSTALL_PREFIX}/.." ABSOLUTE)
file(GLOB DISTRNN_WHEEL_LIB_DIRS LIST_DIRECTORIES true "${DISTRNN_SITE_PACKAGES}/nvidia/*/lib")
target_link_options(distrnn_torch INTERFACE "LINKER:--disable-new-dtags")
foreach(dir ${DISTRNN_WHEEL_LIB_DIRS})
  target_link_options(distrnn_torch INTERFACE "LINKER:-rpath-link,${dir}" "LINKER:-rpath,${dir}")
endforeach()

set(DISTRNN_HAS_CUDA OFF)
if(TARGET torch_cuda OR TORCH_CUDA_LIBRARIES)
  set(DISTRNN_HAS_CUDA ON)
endif()
message(STATUS "distrnn: torch ${Torch_VERSION}, CUDA in torch: ${DISTRNN_HAS_CUDA}")
