# Third-party libraries, all from Debian packages (see scripts/install-deps.sh):
#   OpenBLAS for the double-precision reference GEMM (the float path is our own kernels,
#   kernels/cpu/sgemm.h) and as a benchmark baseline, OpenMP for CPU loops,
#   GoogleTest and Google Benchmark for tests/ and bench/, cairo for the pictures (PNG and SVG
#   with real text) and nlohmann-json to read metrics.jsonl back (watch/).
#
# We link the OpenMP build of OpenBLAS (libopenblas-openmp-dev) by its directory: our kernels
# use OpenMP too, and with Debian's default pthread build two thread pools spin against each
# other — measured 1.5-2.3x slower convolutions on a 2-core machine. The directory goes into the
# RPATH so the loader picks this variant whatever the system's libblas alternative says.
#
# POLYTASK_DEPS_ROOT: a folder into which those Debian packages were unpacked (dpkg -x), for a
# machine that has the compilers but not the libraries and no network to install them (the GPU
# machine need not: bench/gpu_prepare.sh builds here and carries the programs). Its usr/ is
# searched before the system for every package below (the OpenBLAS folders too).
# Empty (the default): the system's packages, as before.
set(POLYTASK_DEPS_ROOT "" CACHE PATH
    "Unpacked Debian packages (dpkg -x) to search before the system; empty: the system only")
if(POLYTASK_DEPS_ROOT)
  if(NOT IS_DIRECTORY "${POLYTASK_DEPS_ROOT}/usr")
    message(FATAL_ERROR "POLYTASK_DEPS_ROOT=${POLYTASK_DEPS_ROOT} has no usr/ folder")
  endif()
  # Config packages (GTest, benchmark, tomlplusplus) are found under
  # <root>/usr/lib/x86_64-linux-gnu/cmake/<name> (the second entry finds them even where
  # CMAKE_LIBRARY_ARCHITECTURE is unset); FindZLIB and FindBLAS under <root>/usr/include and
  # <root>/usr/lib/x86_64-linux-gnu. dpkg -x keeps absolute symlinks (zlib1g-dev's libz.so ->
  # /lib/...): retarget them into the root first, or find_library
  # skips the dangling link.
  list(PREPEND CMAKE_PREFIX_PATH "${POLYTASK_DEPS_ROOT}/usr"
       "${POLYTASK_DEPS_ROOT}/usr/lib/x86_64-linux-gnu/cmake")
  message(STATUS "polytask: searching ${POLYTASK_DEPS_ROOT}/usr before the system's libraries")
endif()
# The OpenBLAS folders under the root first, then the system's (the same when the root is empty).
set(POLYTASK_DEPS_PREFIXES ${POLYTASK_DEPS_ROOT}/usr /usr)
list(REMOVE_DUPLICATES POLYTASK_DEPS_PREFIXES)
list(TRANSFORM POLYTASK_DEPS_PREFIXES APPEND /lib/x86_64-linux-gnu/openblas-openmp
     OUTPUT_VARIABLE POLYTASK_OPENBLAS_OPENMP_DIR)
find_library(POLYTASK_OPENBLAS_LIBRARY openblas PATHS ${POLYTASK_OPENBLAS_OPENMP_DIR} NO_DEFAULT_PATH)
if(POLYTASK_OPENBLAS_LIBRARY)
  list(TRANSFORM POLYTASK_DEPS_PREFIXES APPEND /include/x86_64-linux-gnu/openblas-openmp
       OUTPUT_VARIABLE POLYTASK_CBLAS_HINT)
  message(STATUS "polytask: OpenBLAS (OpenMP build) ${POLYTASK_OPENBLAS_LIBRARY}")
else()
  set(BLA_VENDOR OpenBLAS)
  find_package(BLAS REQUIRED)
  set(POLYTASK_OPENBLAS_LIBRARY ${BLAS_LIBRARIES})
  list(TRANSFORM POLYTASK_DEPS_PREFIXES APPEND /include/x86_64-linux-gnu/openblas-pthread
       OUTPUT_VARIABLE POLYTASK_CBLAS_HINT)
  message(WARNING "polytask: the OpenMP build of OpenBLAS was not found; using ${BLAS_LIBRARIES}. "
                  "Install libopenblas-openmp-dev (one OpenMP thread pool with ours).")
endif()
list(TRANSFORM POLYTASK_DEPS_PREFIXES APPEND /include/openblas OUTPUT_VARIABLE POLYTASK_CBLAS_PLAIN)
find_path(POLYTASK_CBLAS_INCLUDE_DIR cblas.h PATHS ${POLYTASK_CBLAS_HINT} ${POLYTASK_CBLAS_PLAIN}
          NO_DEFAULT_PATH REQUIRED)
add_library(polytask_blas INTERFACE)
target_link_libraries(polytask_blas INTERFACE ${POLYTASK_OPENBLAS_LIBRARY})
target_include_directories(polytask_blas SYSTEM INTERFACE ${POLYTASK_CBLAS_INCLUDE_DIR})
set(CMAKE_INSTALL_RPATH_USE_LINK_PATH ON)

find_package(OpenMP REQUIRED COMPONENTS CXX)
find_package(Threads REQUIRED)
find_package(PkgConfig REQUIRED)
pkg_check_modules(CAIRO REQUIRED IMPORTED_TARGET cairo)
find_package(nlohmann_json 3 REQUIRED)

if(POLYTASK_BUILD_TESTS)
  find_package(GTest REQUIRED)
endif()
if(POLYTASK_BUILD_BENCHMARKS)
  find_package(benchmark REQUIRED)
endif()

# Data-parallel training (comm/): MPI between processes (Debian: libopenmpi-dev), NCCL between
# GPUs (shipped with the CUDA toolkit). Both optional: without them a build trains in one process.
find_package(MPI COMPONENTS CXX QUIET)
set(POLYTASK_WITH_NCCL OFF)
if(MPI_CXX_FOUND AND POLYTASK_WITH_CUDA)
  find_library(POLYTASK_NCCL_LIBRARY nccl HINTS ${CUDAToolkit_LIBRARY_DIR})
  find_path(POLYTASK_NCCL_INCLUDE_DIR nccl.h HINTS ${CUDAToolkit_INCLUDE_DIRS})
  if(POLYTASK_NCCL_LIBRARY AND POLYTASK_NCCL_INCLUDE_DIR)
    set(POLYTASK_WITH_NCCL ON)
  endif()
endif()
