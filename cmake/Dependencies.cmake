# Third-party libraries, all from Debian packages (see .ci/install-deps):
#   OpenBLAS (libopenblas-dev) for the CPU reference GEMM, OpenMP for CPU loops,
#   GoogleTest and Google Benchmark for tests/ and bench/.
set(BLA_VENDOR OpenBLAS)
find_package(BLAS REQUIRED)
find_path(POLYTASK_CBLAS_INCLUDE_DIR cblas.h
          PATHS /usr/include/x86_64-linux-gnu/openblas-pthread /usr/include/openblas
          REQUIRED)
add_library(polytask_blas INTERFACE)
target_link_libraries(polytask_blas INTERFACE ${BLAS_LIBRARIES})
target_include_directories(polytask_blas SYSTEM INTERFACE ${POLYTASK_CBLAS_INCLUDE_DIR})

find_package(OpenMP REQUIRED COMPONENTS CXX)
find_package(Threads REQUIRED)

if(POLYTASK_BUILD_TESTS)
  find_package(GTest REQUIRED)
endif()
if(POLYTASK_BUILD_BENCHMARKS)
  find_package(benchmark REQUIRED)
endif()
