# FindNCCL: the NCCL that libtorch itself loads, so we compile against the same
# version we run with.
#
# The PyPI torch wheel ships NCCL in site-packages/nvidia/nccl/{include,lib} (only
# libnccl.so.2, no libnccl.so) and libtorch_cuda.so finds it through its RUNPATH
# ($ORIGIN/../../nvidia/nccl/lib). The CUDA toolkit (/usr/local/cuda) and distribution
# packages carry other NCCL versions: a bare `#include <nccl.h>` plus `-lnccl` would
# compile against one and run another. Search order:
#   1. NCCL_ROOT (CMake or environment variable): <root>/include/nccl.h and
#      <root>/lib{,64}/libnccl.so*; nothing else is searched.
#   2. The directory libtorch_cuda.so resolves libnccl.so.2 to (ldd on it), and the
#      wheel's nvidia/nccl next to torch (NCCL_WHEEL_HINT, set by Dependencies.cmake).
# System directories are never searched without NCCL_ROOT.
#
# Result: NCCL_FOUND, NCCL_INCLUDE_DIR, NCCL_LIBRARY, NCCL_LIBRARY_DIR, NCCL_VERSION
# (from nccl.h), NCCL_VERSION_CODE, NCCL_TORCH_LOADS (the libnccl.so.2 libtorch_cuda
# resolves to, if ldd could tell), and the imported target NCCL::NCCL.

set(_nccl_hints "")
if(DEFINED NCCL_ROOT AND NOT "${NCCL_ROOT}" STREQUAL "")
  set(_nccl_hints "${NCCL_ROOT}")
elseif(DEFINED ENV{NCCL_ROOT} AND NOT "$ENV{NCCL_ROOT}" STREQUAL "")
  set(NCCL_ROOT "$ENV{NCCL_ROOT}")
  set(_nccl_hints "${NCCL_ROOT}")
endif()

# Where libtorch_cuda.so loads libnccl.so.2 from (what runs if we do nothing).
set(NCCL_TORCH_LOADS "")
if(DEFINED NCCL_TORCH_CUDA_LIBRARY AND EXISTS "${NCCL_TORCH_CUDA_LIBRARY}")
  find_program(_nccl_ldd ldd)
  if(_nccl_ldd)
    execute_process(COMMAND "${_nccl_ldd}" "${NCCL_TORCH_CUDA_LIBRARY}" OUTPUT_VARIABLE _nccl_ldd_out
                    ERROR_QUIET RESULT_VARIABLE _nccl_ldd_rc)
    if(_nccl_ldd_rc EQUAL 0 AND _nccl_ldd_out MATCHES "libnccl\\.so\\.2 => ([^ \t\n]+)")
      get_filename_component(NCCL_TORCH_LOADS "${CMAKE_MATCH_1}" REALPATH)
    endif()
  endif()
endif()

if(NOT _nccl_hints)
  if(NCCL_TORCH_LOADS)
    get_filename_component(_nccl_dir "${NCCL_TORCH_LOADS}" DIRECTORY)
    get_filename_component(_nccl_dir "${_nccl_dir}/.." ABSOLUTE)
    list(APPEND _nccl_hints "${_nccl_dir}")
  endif()
  if(DEFINED NCCL_WHEEL_HINT)
    list(APPEND _nccl_hints "${NCCL_WHEEL_HINT}")
  endif()
endif()

find_path(NCCL_INCLUDE_DIR nccl.h HINTS ${_nccl_hints} PATH_SUFFIXES include NO_DEFAULT_PATH)
find_library(NCCL_LIBRARY NAMES nccl libnccl.so.2 HINTS ${_nccl_hints} PATH_SUFFIXES lib lib64 NO_DEFAULT_PATH)

if(NCCL_INCLUDE_DIR AND EXISTS "${NCCL_INCLUDE_DIR}/nccl.h")
  file(STRINGS "${NCCL_INCLUDE_DIR}/nccl.h" _nccl_defs REGEX "^#define NCCL_(MAJOR|MINOR|PATCH) +[0-9]+")
  foreach(part MAJOR MINOR PATCH)
    string(REGEX MATCH "NCCL_${part} +([0-9]+)" _m "${_nccl_defs}")
    set(NCCL_${part} "${CMAKE_MATCH_1}")
  endforeach()
  set(NCCL_VERSION "${NCCL_MAJOR}.${NCCL_MINOR}.${NCCL_PATCH}")
  # NCCL_VERSION(X,Y,Z) of nccl.h: X*1000+Y*100+Z up to 2.8, X*10000+Y*100+Z after.
  if(NCCL_MAJOR LESS_EQUAL 2 AND NCCL_MINOR LESS_EQUAL 8)
    math(EXPR NCCL_VERSION_CODE "${NCCL_MAJOR} * 1000 + ${NCCL_MINOR} * 100 + ${NCCL_PATCH}")
  else()
    math(EXPR NCCL_VERSION_CODE "${NCCL_MAJOR} * 10000 + ${NCCL_MINOR} * 100 + ${NCCL_PATCH}")
  endif()
endif()

include(FindPackageHandleStandardArgs)
find_package_handle_standard_args(NCCL REQUIRED_VARS NCCL_LIBRARY NCCL_INCLUDE_DIR VERSION_VAR NCCL_VERSION)

if(NCCL_FOUND)
  get_filename_component(NCCL_LIBRARY "${NCCL_LIBRARY}" REALPATH)
  get_filename_component(NCCL_LIBRARY_DIR "${NCCL_LIBRARY}" DIRECTORY)
  if(NCCL_TORCH_LOADS AND NOT NCCL_TORCH_LOADS STREQUAL NCCL_LIBRARY)
    message(WARNING "NCCL: linking ${NCCL_LIBRARY} but libtorch_cuda resolves libnccl.so.2 to ${NCCL_TORCH_LOADS}; "
                    "the executables' RPATH puts ${NCCL_LIBRARY_DIR} first so both load the former")
  endif()
  if(NOT TARGET NCCL::NCCL)
    add_library(NCCL::NCCL SHARED IMPORTED)
    # Linked by full path: the executable records the SONAME (libnccl.so.2) as NEEDED.
    set_target_properties(NCCL::NCCL PROPERTIES IMPORTED_LOCATION "${NCCL_LIBRARY}" IMPORTED_NO_SONAME FALSE)
  endif()
endif()
mark_as_advanced(NCCL_INCLUDE_DIR NCCL_LIBRARY)
