// nvcuda::wmma for the CPU emulator (kernels/cuda/emulator.h): to be written with the
// tensor-core kernels.
#pragma once
