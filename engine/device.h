// Where tensors live, and the raw memory operations behind them. The CUDA half compiles only
// when the build found a CUDA toolkit (POLYTASK_WITH_CUDA); without one, asking for a device
// tensor throws a clear error instead of failing to build.
#pragma once

#include <cstddef>
#include <string>

namespace polytask {

enum class Device { CPU, CUDA };

const char* device_name(Device d);
// "cpu" | "cuda" | "auto" (CUDA when a device is present, else CPU).
Device parse_device(const std::string& text);

// True when the build has CUDA and the driver reports at least one device.
bool cuda_available();
// One line describing why CUDA cannot be used ("built without CUDA", "no CUDA device: ..."),
// empty when it can. GPU tests print this when they skip.
std::string cuda_unavailable_reason();

// Allocation and copies. Device memory errors name the size asked for.
void* allocate_bytes(Device d, size_t bytes);
void free_bytes(Device d, void* p) noexcept;
void copy_bytes(void* dst, Device dst_device, const void* src, Device src_device, size_t bytes);
void zero_bytes(Device d, void* p, size_t bytes);

}  // namespace polytask
