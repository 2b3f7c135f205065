# Enables CUDA when a toolkit is present (and POLYTASK_ENABLE_CUDA is on). Without one the
# whole project still builds and tests on the CPU; GPU tests then skip with a reason.
#
# The default architecture is sm_90 (H100/H200); override with
#   cmake -DCMAKE_CUDA_ARCHITECTURES=80 ...
set(POLYTASK_WITH_CUDA OFF)
if(POLYTASK_ENABLE_CUDA)
  if(NOT CMAKE_CUDA_COMPILER AND EXISTS /usr/local/cuda/bin/nvcc)
    set(CMAKE_CUDA_COMPILER /usr/local/cuda/bin/nvcc)
  endif()
  include(CheckLanguage)
  check_language(CUDA)
  if(CMAKE_CUDA_COMPILER)
    if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES)
      set(CMAKE_CUDA_ARCHITECTURES 90 CACHE STRING "CUDA architectures to compile for")
    endif()
    enable_language(CUDA)
    # CMake 3.25 (Debian 12) does not know that nvcc 12+ takes C++20: tell it the flag.
    if(NOT CMAKE_CUDA20_STANDARD_COMPILE_OPTION)
      set(CMAKE_CUDA20_STANDARD_COMPILE_OPTION "-std=c++20")
      set(CMAKE_CUDA20_EXTENSION_COMPILE_OPTION "-std=c++20")
    endif()
    set(CMAKE_CUDA_STANDARD 20)
    set(CMAKE_CUDA_STANDARD_REQUIRED ON)
    set(CMAKE_CUDA_EXTENSIONS OFF)
    find_package(CUDAToolkit REQUIRED)
    set(POLYTASK_WITH_CUDA ON)
    message(STATUS "polytask: CUDA ${CUDAToolkit_VERSION}, architectures ${CMAKE_CUDA_ARCHITECTURES}")
  else()
    message(STATUS "polytask: no CUDA toolkit found, building the CPU backend only")
  endif()
endif()
