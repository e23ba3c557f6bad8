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

set(DISTRNN_HAS_CUDA OFF)
if(TARGET torch_cuda OR TORCH_CUDA_LIBRARIES)
  set(DISTRNN_HAS_CUDA ON)
endif()

# NCCL for the GPU communicator (src/comm/nccl_api.cc, the one file that includes
# nccl.h). AUTO: built when torch has CUDA and FindNCCL finds the NCCL libtorch loads;
# ON: required; OFF: never (--comm=nccl then says so). NCCL_ROOT overrides the search.
set(DISTRNN_WITH_NCCL AUTO CACHE STRING "Build the NCCL communicator: AUTO, ON or OFF")
set_property(CACHE DISTRNN_WITH_NCCL PROPERTY STRINGS AUTO ON OFF)
string(TOUPPER "${DISTRNN_WITH_NCCL}" _distrnn_with_nccl)
if(NOT _distrnn_with_nccl MATCHES "^(AUTO|ON|OFF)$")
  message(FATAL_ERROR "DISTRNN_WITH_NCCL must be AUTO, ON or OFF, got '${DISTRNN_WITH_NCCL}'")
endif()
set(DISTRNN_NCCL_ENABLED OFF)
if(NOT _distrnn_with_nccl STREQUAL "OFF")
  if(NOT DISTRNN_HAS_CUDA)
    if(_distrnn_with_nccl STREQUAL "ON")
      message(FATAL_ERROR "DISTRNN_WITH_NCCL=ON needs a CUDA-enabled libtorch; this one has no CUDA")
    endif()
  else()
    find_library(NCCL_TORCH_CUDA_LIBRARY torch_cuda PATHS "${TORCH_INSTALL_PREFIX}/lib" NO_DEFAULT_PATH)
    set(NCCL_WHEEL_HINT "${DISTRNN_SITE_PACKAGES}/nvidia/nccl")
    if(_distrnn_with_nccl STREQUAL "ON")
      find_package(NCCL REQUIRED)
    else()
      find_package(NCCL)
    endif()
    set(DISTRNN_NCCL_ENABLED ${NCCL_FOUND})
  endif()
endif()

target_link_options(distrnn_torch INTERFACE "LINKER:--disable-new-dtags")
# NCCL's directory first: with NCCL_ROOT elsewhere, libtorch then loads that copy too.
set(_distrnn_rpath_dirs ${DISTRNN_WHEEL_LIB_DIRS})
if(DISTRNN_NCCL_ENABLED)
  list(PREPEND _distrnn_rpath_dirs "${NCCL_LIBRARY_DIR}")
  list(REMOVE_DUPLICATES _distrnn_rpath_dirs)
endif()
foreach(dir ${_distrnn_rpath_dirs})
  target_link_options(distrnn_torch INTERFACE "LINKER:-rpath-link,${dir}" "LINKER:-rpath,${dir}")
endforeach()

set(_distrnn_nccl_text "off (DISTRNN_WITH_NCCL=${DISTRNN_WITH_NCCL})")
if(DISTRNN_NCCL_ENABLED)
  set(_distrnn_nccl_text "NCCL ${NCCL_VERSION} from ${NCCL_LIBRARY}")
endif()
message(STATUS "distrnn: torch ${Torch_VERSION}, CUDA in torch: ${DISTRNN_HAS_CUDA}, "
               "NCCL communicator: ${_distrnn_nccl_text}")
