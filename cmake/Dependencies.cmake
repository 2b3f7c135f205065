# Third-party libraries, all from Debian packages (see scripts/install-deps.sh):
#   OpenBLAS for the CPU reference GEMM, OpenMP for CPU loops,
#   GoogleTest and Google Benchmark for tests/ and bench/.
#
# We link the OpenMP build of OpenBLAS (libopenblas-openmp-dev) by its directory: our kernels
# use OpenMP too, and with Debian's default pthread build two thread pools spin against each
# other — measured 1.5-2.3x slower convolutions on a 2-core machine. The directory goes into the
# RPATH so the loader picks this variant whatever the system's libblas alternative says.
set(POLYTASK_OPENBLAS_OPENMP_DIR /usr/lib/x86_64-linux-gnu/openblas-openmp)
find_library(POLYTASK_OPENBLAS_LIBRARY openblas PATHS ${POLYTASK_OPENBLAS_OPENMP_DIR} NO_DEFAULT_PATH)
if(POLYTASK_OPENBLAS_LIBRARY)
  set(POLYTASK_CBLAS_HINT /usr/include/x86_64-linux-gnu/openblas-openmp)
  message(STATUS "polytask: OpenBLAS (OpenMP build) ${POLYTASK_OPENBLAS_LIBRARY}")
else()
  set(BLA_VENDOR OpenBLAS)
  find_package(BLAS REQUIRED)
  set(POLYTASK_OPENBLAS_LIBRARY ${BLAS_LIBRARIES})
  set(POLYTASK_CBLAS_HINT /usr/include/x86_64-linux-gnu/openblas-pthread)
  message(WARNING "polytask: the OpenMP build of OpenBLAS was not found; using ${BLAS_LIBRARIES}. "
                  "Install libopenblas-openmp-dev for full CPU speed.")
endif()
find_path(POLYTASK_CBLAS_INCLUDE_DIR cblas.h PATHS ${POLYTASK_CBLAS_HINT} /usr/include/openblas
          NO_DEFAULT_PATH REQUIRED)
add_library(polytask_blas INTERFACE)
target_link_libraries(polytask_blas INTERFACE ${POLYTASK_OPENBLAS_LIBRARY})
target_include_directories(polytask_blas SYSTEM INTERFACE ${POLYTASK_CBLAS_INCLUDE_DIR})
set(CMAKE_INSTALL_RPATH_USE_LINK_PATH ON)

find_package(OpenMP REQUIRED COMPONENTS CXX)
find_package(Threads REQUIRED)

if(POLYTASK_BUILD_TESTS)
  find_package(GTest REQUIRED)
endif()
if(POLYTASK_BUILD_BENCHMARKS)
  find_package(benchmark REQUIRED)
endif()
