#include "watch/protobuf_wire.h"

#include <bit>

#include "kernels/error.h"

namespace polytask::watch::wire {

// ----------------------------------------------------------------------------- encoding

void Encoder::raw_varint(uint64_t value) {
  while (value >= 0x80) {
    out_.push_back(static_cast<char>((value & 0x7F) | 0x80));
    value >>= 7;
  }
  out_.push_back(static_cast<char>(value));
}

void Encoder::key(int field, WireType type) {
  raw_varint((static_cast<uint64_t>(field) << 3) | static_cast<uint64_t>(type));
}

Encoder& Encoder::varint(int field, uint64_t value) {
  key(field, WireType::kVarint);
  raw_varint(value);
  return *this;
}

Encoder& Encoder::double_(int field, double value) {
  key(field, WireType::kFixed64);
  put_le64(out_, std::bit_cast<uint64_t>(value));
  return *this;
}

Encoder& Encoder::float_(int field, float value) {
  key(field, WireType::kFixed32);
  put_le32(out_, std::bit_cast<uint32_t>(value));
  return *this;
}

Encoder& Encoder::bytes(int field, std::string_view value) {
  key(field, WireType::kLengthDelimited);
  raw_varint(value.size());
  out_.append(value);
  return *this;
}

Encoder& Encoder::packed_doubles(int field, const std::vector<double>& values) {
  key(field, WireType::kLengthDelimited);
  raw_varint(values.size() * 8);
  for (double v : values) put_le64(out_, std::bit_cast<uint64_t>(v));
  return *this;
}

// ----------------------------------------------------------------------------- decoding

double Field::as_double() const { return std::bit_cast<double>(bits); }
float Field::as_float() const { return std::bit_cast<float>(static_cast<uint32_t>(bits)); }

uint64_t Decoder::raw_varint() {
  const size_t start = pos_;
  uint64_t value = 0;
  for (int shift = 0; shift < 70; shift += 7) {
    if (pos_ >= in_.size())
      fail("malformed protobuf: varint at byte ", start, " runs past the end");
    const auto byte = static_cast<unsigned char>(in_[pos_++]);
    value |= static_cast<uint64_t>(byte & 0x7F) << shift;
    if (!(byte & 0x80)) return value;
  }
  fail("malformed protobuf: varint at byte ", start, " is longer than 10 bytes");
}

std::string_view Decoder::take(uint64_t n, const char* what) {
  if (n > in_.size() - pos_)
    fail("malformed protobuf: ", what, " of ", n, " bytes at byte ", pos_, " runs past the end (",
         in_.size() - pos_, " left)");
  const std::string_view out = in_.substr(pos_, static_cast<size_t>(n));
  pos_ += static_cast<size_t>(n);
  return out;
}

bool Decoder::next(Field& field) {
  if (pos_ >= in_.size()) return false;
  const size_t start = pos_;
  const uint64_t key = raw_varint();
  const uint64_t number = key >> 3;
  if (number == 0 || number > 0x1FFFFFFF)
    fail("malformed protobuf: field number ", number, " at byte ", start);
  field = Field{};
  field.number = static_cast<int>(number);
  switch (key & 7) {
    case 0:
      field.type = WireType::kVarint;
      field.bits = raw_varint();
      break;
    case 1:
      field.type = WireType::kFixed64;
      field.bits = get_le64(take(8, "fixed64 field").data());
      break;
    case 2:
      field.type = WireType::kLengthDelimited;
      field.bytes = take(raw_varint(), "length-delimited field");
      break;
    case 5:
      field.type = WireType::kFixed32;
      field.bits = get_le32(take(4, "fixed32 field").data());
      break;
    default:
      fail("malformed protobuf: wire type ", key & 7, " (field ", number, ") at byte ", start);
  }
  return true;
}

// ----------------------------------------------------------------------------- byte order

void put_le32(std::string& out, uint32_t value) {
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>(value >> (8 * i)));
}

void put_le64(std::string& out, uint64_t value) {
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>(value >> (8 * i)));
}

uint32_t get_le32(const char* p) {
  uint32_t value = 0;
  for (int i = 0; i < 4; ++i)
    value |= static_cast<uint32_t>(static_cast<unsigned char>(p[i])) << (8 * i);
  return value;
}

uint64_t get_le64(const char* p) {
  uint64_t value = 0;
  for (int i = 0; i < 8; ++i)
    value |= static_cast<uint64_t>(static_cast<unsigned char>(p[i])) << (8 * i);
  return value;
}

}  // namespace polytask::watch::wire
