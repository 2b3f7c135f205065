#include <gtest/gtest.h>

#include <cstdint>
#include <string>

#include "watch/crc32c.h"

namespace polytask::watch {
namespace {

uint32_t crc_of(const std::string& s) { return crc32c(s.data(), s.size()); }
uint32_t masked_of(const std::string& s) { return masked_crc32c(s.data(), s.size()); }

std::string counting_bytes() {
  std::string s;
  for (int i = 0; i < 32; ++i) s.push_back(char(i));
  return s;
}

TEST(Crc32c, CheckValue) {
  // The CRC catalogue's check value of CRC-32C.
  EXPECT_EQ(crc_of("123456789"), 0xE3069283u);
}

TEST(Crc32c, Rfc3720Vectors) {
  // iSCSI (RFC 3720, B.4): 32 zero bytes, 32 0xFF bytes, the bytes 0..31.
  EXPECT_EQ(crc_of(std::string(32, '\0')), 0x8A9136AAu);
  EXPECT_EQ(crc_of(std::string(32, '\xFF')), 0x62A8AB43u);
  EXPECT_EQ(crc_of(counting_bytes()), 0x46DD794Eu);
}

TEST(Crc32c, EmptyIsZero) { EXPECT_EQ(crc32c("", 0), 0u); }

TEST(Crc32c, ContinuesAcrossPieces) {
  const std::string s = "123456789";
  for (size_t cut = 0; cut <= s.size(); ++cut)
    EXPECT_EQ(crc32c(s.data() + cut, s.size() - cut, crc32c(s.data(), cut)), 0xE3069283u) << cut;
}

TEST(Crc32c, MaskedMatchesTensorBoard) {
  // Constants from TensorBoard's own pure-Python implementation (tensorboard 2.21):
  //   from tensorboard.compat.tensorflow_stub.pywrap_tensorflow import masked_crc32c
  //   masked_crc32c(b"123456789")                -> 0xc78ab0e5
  //   masked_crc32c(bytes(range(32)))            -> 0x951f7892
  //   masked_crc32c(struct.pack("<Q", 24))       -> 0x224b7fa3  (a TFRecord length header)
  //   masked_crc32c(b"")                         -> 0xa282ead8
  EXPECT_EQ(masked_of("123456789"), 0xC78AB0E5u);
  EXPECT_EQ(masked_of(counting_bytes()), 0x951F7892u);
  const std::string length_24("\x18\0\0\0\0\0\0\0", 8);
  EXPECT_EQ(masked_of(length_24), 0x224B7FA3u);
  EXPECT_EQ(masked_of(""), 0xA282EAD8u);
}

}  // namespace
}  // namespace polytask::watch
