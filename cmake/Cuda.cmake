# Enables CUDA when a toolkit is present (and POLYTASK_ENABLE_CUDA is on). Without one the
# whole project still builds and tests on the CPU; GPU tests then skip with a reason.
#
# By default the kernels are compiled for every NVIDIA GPU since Turing: SASS for sm_75 (T4,
# RTX 20xx), sm_80 (A100), sm_86 (RTX 30xx, A10, A40), sm_89 (L4, L40, RTX 40xx) and sm_90
# (H100/H200), plus compute_90 PTX that the driver compiles for newer GPUs. The TF32/BF16
# tensor-core kernels exist for sm_80 and later only (kernels/cuda/tensor_core.h). One
# architecture builds faster; override with e.g.
#   cmake -DCMAKE_CUDA_ARCHITECTURES=90 ...   (or =native for the GPU of the build machine)
set(POLYTASK_DEFAULT_CUDA_ARCHITECTURES "75-real;80-real;86-real;89-real;90")
set(POLYTASK_WITH_CUDA OFF)
if(POLYTASK_ENABLE_CUDA)
  if(NOT CMAKE_CUDA_COMPILER AND EXISTS /usr/local/cuda/bin/nvcc)
    set(CMAKE_CUDA_COMPILER /usr/local/cuda/bin/nvcc)
  endif()
  include(CheckLanguage)
  check_language(CUDA)
  if(CMAKE_CUDA_COMPILER)
    if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES)
      set(CMAKE_CUDA_ARCHITECTURES "${POLYTASK_DEFAULT_CUDA_ARCHITECTURES}" CACHE STRING
          "CUDA architectures to compile for")
    endif()
    # One CUDA runtime, the shared one, for every target: CMake would otherwise link the
    # static cudart into each executable beside the CUDA::cudart (shared) the targets name.
    set(CMAKE_CUDA_RUNTIME_LIBRARY Shared)
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

# What the start-up check names when the GPU has no image (kernels/cuda/kernel_image.h); the
# emulated kernels, built with or without a toolkit, report the default list.
if(POLYTASK_WITH_CUDA)
  set(POLYTASK_CUDA_ARCHITECTURES "${CMAKE_CUDA_ARCHITECTURES}")
else()
  set(POLYTASK_CUDA_ARCHITECTURES "${POLYTASK_DEFAULT_CUDA_ARCHITECTURES}")
endif()
