#include "fuzz/fuzz_support.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <sstream>
#include <stdexcept>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/split_mix.h"

namespace distrnn::fuzz {
namespace {

using nlohmann::json;

constexpr char kFormatLine[] = "distrnn-checkpoint-v2\n";

// Bytes that break parsers: invalid UTF-8 of every kind, NUL, line ends, quotes and
// brackets, markers our formats give meaning to.
const std::vector<std::string>& HostileTokens() {
  static const std::vector<std::string> tokens = {
      "\xFF", "\xC3", "\xED\xA0\x80", "\xC0\x80", "\xF4\x90\x80\x80", "\x80", std::string("\0", 1), "\r", "\r\n",
      "\t", " ", "\n\n", "\n", "-1", "0", "nan", "inf", "-inf", "1e308", "99999999999999999999",
      "18446744073709551615", "2147483648", "-9223372036854775808", "0x7fffffff", "\"", "{", "}", "[", "]", ",",
      ":", "null", "\\u0000", "\\ud800", "<unk>", "<eos>", "<pad>", "--", "=", "#", "1\t", "PK\x03\x04"};
  return tokens;
}

// Numbers that break size and value checks.
const std::vector<std::string>& HostileNumbers() {
  static const std::vector<std::string> numbers = {
      "0", "-1", "-0", "1e308", "-1e308", "1e-320", "nan", "inf", "-inf", "2147483647", "2147483648",
      "4294967296", "9223372036854775807", "9223372036854775808", "18446744073709551616",
      "99999999999999999999999999", "1.5", "0x10", "", "1_000", "-2147483649", "1e9", "123456789"};
  return numbers;
}

const std::vector<uint8_t>& InterestingBytes() {
  static const std::vector<uint8_t> bytes = {0x00, 0xFF, 0x80, 0xC0, 0x7F, '\n', '\t', ' ', '"', '{', '0', '9', '-',
                                             '.', 'e', '\r', 0x01, 0xFE};
  return bytes;
}

size_t PickOffset(const std::string& data, const std::vector<size_t>& boundaries, Rng& rng, bool allow_end) {
  const size_t limit = allow_end ? data.size() + 1 : std::max<size_t>(data.size(), 1);
  if (!boundaries.empty() && rng.Chance(0.5)) {
    size_t b = rng.Pick(boundaries);
    const int delta = static_cast<int>(rng.Below(3)) - 1;  // the boundary or a byte either side
    if (delta < 0 && b > 0) --b;
    if (delta > 0) ++b;
    return std::min(b, limit - 1);
  }
  return rng.Below(limit);
}

std::string Printable(const std::string& s) {
  std::string out;
  for (unsigned char c : s.substr(0, 24)) {
    if (c >= 0x20 && c < 0x7F && c != '\\') {
      out.push_back(static_cast<char>(c));
    } else {
      char buf[8];
      std::snprintf(buf, sizeof(buf), "\\x%02X", c);
      out += buf;
    }
  }
  if (s.size() > 24) absl::StrAppend(&out, "...(", s.size(), " bytes)");
  return out;
}

uint32_t Crc32(const std::string& data) {
  return static_cast<uint32_t>(crc32_z(crc32_z(0, nullptr, 0), reinterpret_cast<const Bytef*>(data.data()), data.size()));
}

uint32_t ReadLe(const std::string& s, size_t at, int bytes) {
  uint32_t v = 0;
  for (int i = bytes - 1; i >= 0; --i) v = (v << 8) | static_cast<unsigned char>(s[at + i]);
  return v;
}

void WriteLe(std::string& s, size_t at, int bytes, uint64_t v) {
  for (int i = 0; i < bytes && at + i < s.size(); ++i) s[at + i] = static_cast<char>((v >> (8 * i)) & 0xFF);
}

// A hostile JSON value: wrong types, signs, magnitudes and sizes.
json HostileJson(Rng& rng) {
  switch (rng.Below(22)) {
    case 0: return "";
    case 1: return "x";
    case 2: return "lstm";
    case 3: return -1;
    case 4: return 0;
    case 5: return 1;
    case 6: return 1e308;
    case 7: return -1e308;
    case 8: return 2147483648LL;
    case 9: return 4294967296ULL;
    case 10: return std::numeric_limits<int64_t>::max();
    case 11: return std::numeric_limits<uint64_t>::max();
    case 12: return std::numeric_limits<int64_t>::min();
    case 13: return 0.5;
    case 14: return true;
    case 15: return nullptr;
    case 16: return json::array();
    case 17: return json::object();
    case 18: return json::array({1, "a"});
    case 19: return json::object({{"k", 1}});
    case 20: return std::string(1 << 16, 'a');
    default: return json(std::vector<std::string>(20000, "w"));  // a huge vocabulary-like array
  }
}

// Every node of `j` as a JSON pointer (arrays: a few elements).
void CollectPointers(const json& j, const json::json_pointer& at, std::vector<json::json_pointer>& out) {
  out.push_back(at);
  if (j.is_object()) {
    for (const auto& [key, value] : j.items()) CollectPointers(value, at / key, out);
  } else if (j.is_array() && !j.empty()) {
    for (size_t i : {size_t{0}, j.size() / 2, j.size() - 1}) CollectPointers(j[i], at / i, out);
  }
}

std::string MutateMeta(json meta, const std::string& payload, Rng& rng, std::string& log) {
  const int steps = 1 + static_cast<int>(rng.Below(2));
  for (int s = 0; s < steps; ++s) {
    std::vector<json::json_pointer> pointers;
    CollectPointers(meta, json::json_pointer(), pointers);
    const json::json_pointer at = rng.Pick(pointers);
    const std::string where = at.to_string().empty() ? "/" : at.to_string();
    const uint64_t op = rng.Below(10);
    if (at.empty()) {  // the whole metadata
      if (op < 3) {
        meta = json::object();
        log += "meta := {}; ";
      } else {
        meta["unexpected_key"] = HostileJson(rng);
        log += "meta gains a key; ";
      }
      continue;
    }
    json& parent = meta[at.parent_pointer()];
    if (op < 6) {
      json value = HostileJson(rng);
      log += absl::StrCat("meta", where, " := ", Printable(value.dump()), "; ");
      meta[at] = std::move(value);
    } else if (op < 8) {
      log += absl::StrCat("meta", where, " removed; ");
      if (parent.is_object()) {
        parent.erase(at.back());
      } else if (parent.is_array()) {
        parent.erase(static_cast<size_t>(std::stoull(at.back())));
      }
    } else if (op < 9 && meta[at].is_string()) {
      meta[at] = meta[at].get<std::string>() + "\xC3\xA9";  // still valid UTF-8, another token
      log += absl::StrCat("meta", where, " += 'é'; ");
    } else if (meta[at].is_number_integer()) {
      const int64_t v = meta[at].get<int64_t>();
      meta[at] = rng.Chance(0.5) ? v + 1 : -v - 1;
      log += absl::StrCat("meta", where, " off by one / negated; ");
    } else {
      meta[at] = HostileJson(rng);
      log += absl::StrCat("meta", where, " := hostile; ");
    }
  }
  return StampCheckpoint(meta, payload);
}

std::string MutateHeader(const CheckpointParts& parts, Rng& rng, std::string& log) {
  json header = parts.header;
  const std::vector<std::string> keys = {"payload_bytes", "crc32", "meta_crc32", "meta"};
  const std::string key = rng.Pick(keys);
  switch (rng.Below(4)) {
    case 0:
      header.erase(key);
      log += absl::StrCat("header.", key, " removed; ");
      break;
    case 1: {
      json value = HostileJson(rng);
      log += absl::StrCat("header.", key, " := ", Printable(value.dump()), "; ");
      header[key] = std::move(value);
      break;
    }
    case 2:
      if (header.contains(key) && header[key].is_number_unsigned()) {
        const uint64_t v = header[key].get<uint64_t>();
        header[key] = rng.Chance(0.5) ? v + 1 : v - 1;
        log += absl::StrCat("header.", key, " off by one; ");
        break;
      }
      [[fallthrough]];
    default: {
      const std::string text = header.dump();
      log += "header text: ";
      std::string mutated = MutateBytes(text, TextBoundaries(text), rng, log);
      std::string bytes = absl::StrCat(kFormatLine, mutated, "\n", parts.payload);
      // Re-stamp the metadata checksum when the mutated header still parses.
      json parsed = json::parse(mutated, nullptr, /*allow_exceptions=*/false);
      if (parsed.is_object() && parsed.contains("meta") && parsed["meta"].is_object()) {
        parsed["meta_crc32"] = Crc32(parsed["meta"].dump());
        bytes = JoinCheckpoint(parsed, parts.payload);
        log += "(meta_crc32 re-stamped); ";
      }
      return bytes;
    }
  }
  return JoinCheckpoint(header, parts.payload);
}

// Numeric fields of zip records (offset from the record's start, width in bytes).
std::string MutateZipField(const CheckpointParts& parts, Rng& rng, std::string& log) {
  std::string zip = parts.payload;
  const std::vector<ZipEntry> entries = ListZipEntries(zip);
  if (entries.empty()) return StampCheckpoint(parts.header["meta"], zip);
  const ZipEntry& e = rng.Pick(entries);
  struct Field {
    const char* name;
    size_t offset;
    int width;
  };
  static const std::vector<Field> local = {{"local.crc", 14, 4},      {"local.csize", 18, 4}, {"local.usize", 22, 4},
                                           {"local.namelen", 26, 2},  {"local.extralen", 28, 2},
                                           {"local.method", 8, 2},    {"local.flags", 6, 2}};
  static const std::vector<Field> central = {{"central.csize", 20, 4},    {"central.usize", 24, 4},
                                             {"central.namelen", 28, 2},  {"central.extralen", 30, 2},
                                             {"central.commentlen", 32, 2}, {"central.offset", 42, 4},
                                             {"central.method", 10, 2}};
  const bool in_central = rng.Chance(0.5);
  const Field& f = in_central ? rng.Pick(central) : rng.Pick(local);
  const size_t at = (in_central ? e.central_header : e.local_header) + f.offset;
  const uint64_t old = ReadLe(zip, at, f.width);
  const std::vector<uint64_t> values = {0, 1, old + 1, old - 1, 0xFFFF, 0xFFFFFFFFu, 0x7FFFFFFF, old * 2, 0x10000};
  const uint64_t v = rng.Pick(values);
  WriteLe(zip, at, f.width, v);
  log += absl::StrCat("zip entry '", e.name, "' ", f.name, " ", old, " -> ", v & ((uint64_t{1} << (8 * f.width)) - 1),
                      " (re-stamped); ");
  return StampCheckpoint(parts.header["meta"], zip);
}

// Mutates the data of one stored zip entry and repairs its CRC-32 in both records, so the
// pickle reader or the tensor values (NaN, Inf, huge) are what the reader meets.
std::string MutateZipEntryData(const CheckpointParts& parts, Rng& rng, std::string& log) {
  std::string zip = parts.payload;
  std::vector<ZipEntry> entries;
  for (const ZipEntry& e : ListZipEntries(zip)) {
    if (e.method == 0 && e.size > 0) entries.push_back(e);
  }
  if (entries.empty()) return StampCheckpoint(parts.header["meta"], zip);
  const ZipEntry& e = rng.Pick(entries);
  std::string data = zip.substr(e.data, e.size);
  const bool is_tensor = absl::StrContains(e.name, "/data/") && !absl::EndsWith(e.name, ".pkl");
  if (is_tensor && data.size() >= 4 && rng.Chance(0.6)) {
    static const std::vector<uint32_t> floats = {0x7FC00000u, 0x7F800000u, 0xFF800000u, 0x7F7FFFFFu, 0x00000001u};
    const uint32_t bits = rng.Pick(floats);
    const size_t at = rng.Below(data.size() / 4) * 4;
    WriteLe(data, at, 4, bits);
    log += absl::StrCat("entry '", e.name, "' float at ", at, " := 0x", absl::Hex(bits), "; ");
  } else {
    log += absl::StrCat("entry '", e.name, "' bytes: ");
    // Keep the size (the zip records say it); flip and overwrite in place.
    std::string mutated = MutateBytes(data, TextBoundaries(data), rng, log);
    mutated.resize(data.size(), '\0');
    data = mutated;
  }
  zip.replace(e.data, e.size, data);
  const uint32_t crc = Crc32(data);
  WriteLe(zip, e.local_header + 14, 4, crc);
  WriteLe(zip, e.central_header + 16, 4, crc);
  log += "(zip and checkpoint CRCs repaired); ";
  return StampCheckpoint(parts.header["meta"], zip);
}

}  // namespace

uint64_t Rng::Next() {
  state_ = common::SplitMix64(state_);
  return state_;
}

uint64_t CaseSeed(uint64_t base_seed, const std::string& kind, int64_t index) {
  uint64_t h = base_seed;
  for (unsigned char c : kind) h = common::SplitMix64(h ^ c);
  return common::SplitMix64(h ^ static_cast<uint64_t>(index));
}

std::vector<size_t> TextBoundaries(const std::string& text) {
  std::vector<size_t> out = {0, text.size()};
  for (size_t i = 0; i < text.size() && out.size() < 512; ++i) {
    const char c = text[i];
    if (c == '\n' || c == ' ' || c == '\t' || c == '=' || c == ',' || c == ':' || c == '"') {
      out.push_back(i);
      out.push_back(i + 1);
    }
  }
  return out;
}

std::string MutateNumber(std::string data, Rng& rng, std::string& log) {
  std::vector<std::pair<size_t, size_t>> runs;
  for (size_t i = 0; i < data.size();) {
    if (data[i] >= '0' && data[i] <= '9') {
      size_t begin = i;
      if (begin > 0 && data[begin - 1] == '-') --begin;
      while (i < data.size() && ((data[i] >= '0' && data[i] <= '9') || data[i] == '.' || data[i] == 'e')) ++i;
      runs.emplace_back(begin, i);
    } else {
      ++i;
    }
  }
  if (runs.empty()) return data;
  const auto [begin, end] = rng.Pick(runs);
  const std::string& number = rng.Pick(HostileNumbers());
  log += absl::StrCat("number '", Printable(data.substr(begin, end - begin)), "' at ", begin, " -> '", number, "'; ");
  data.replace(begin, end - begin, number);
  return data;
}

std::string MutateBytes(std::string data, const std::vector<size_t>& boundaries, Rng& rng, std::string& log) {
  const int steps = 1 + static_cast<int>(rng.Below(3));
  for (int s = 0; s < steps; ++s) {
    switch (rng.Below(10)) {
      case 0: {  // bit flips
        if (data.empty()) break;
        const int flips = 1 + static_cast<int>(rng.Below(4));
        for (int k = 0; k < flips; ++k) {
          const size_t at = PickOffset(data, boundaries, rng, false);
          const int bit = static_cast<int>(rng.Below(8));
          data[at] = static_cast<char>(data[at] ^ (1 << bit));
          log += absl::StrCat("flip bit ", bit, " at ", at, "; ");
        }
        break;
      }
      case 1: {  // an interesting byte
        if (data.empty()) break;
        const size_t at = PickOffset(data, boundaries, rng, false);
        const uint8_t b = rng.Pick(InterestingBytes());
        data[at] = static_cast<char>(b);
        log += absl::StrCat("byte at ", at, " := 0x", absl::Hex(b), "; ");
        break;
      }
      case 2: {  // truncation at a region boundary
        const size_t at = PickOffset(data, boundaries, rng, true);
        data.resize(std::min(at, data.size()));
        log += absl::StrCat("truncate to ", data.size(), "; ");
        break;
      }
      case 3: {  // a hostile token
        const size_t at = PickOffset(data, boundaries, rng, true);
        const std::string& t = rng.Pick(HostileTokens());
        data.insert(at, t);
        log += absl::StrCat("insert '", Printable(t), "' at ", at, "; ");
        break;
      }
      case 4: {  // random bytes
        const size_t at = PickOffset(data, boundaries, rng, true);
        std::string bytes(1 + rng.Below(16), '\0');
        for (char& c : bytes) c = static_cast<char>(rng.Below(256));
        data.insert(at, bytes);
        log += absl::StrCat("insert ", bytes.size(), " random bytes at ", at, "; ");
        break;
      }
      case 5: {  // deletion
        if (data.empty()) break;
        const size_t at = PickOffset(data, boundaries, rng, false);
        const size_t n = std::min<size_t>(1 + rng.Below(64), data.size() - at);
        data.erase(at, n);
        log += absl::StrCat("delete ", n, " bytes at ", at, "; ");
        break;
      }
      case 6: {  // duplication
        if (data.empty()) break;
        const size_t from = rng.Below(data.size());
        const size_t n = std::min<size_t>(1 + rng.Below(256), data.size() - from);
        const size_t to = PickOffset(data, boundaries, rng, true);
        data.insert(to, data.substr(from, n));
        log += absl::StrCat("copy ", n, " bytes from ", from, " to ", to, "; ");
        break;
      }
      case 7:
        data = MutateNumber(std::move(data), rng, log);
        break;
      case 8: {  // a chunk repeated many times (large input, bounded)
        if (data.empty()) break;
        const size_t from = PickOffset(data, boundaries, rng, false);
        const size_t n = std::min<size_t>(1 + rng.Below(128), data.size() - from);
        const std::string chunk = data.substr(from, n);
        const size_t times = 10 + rng.Below(2000);
        std::string repeated;
        repeated.reserve(chunk.size() * times);
        for (size_t k = 0; k < times; ++k) repeated += chunk;
        data.insert(from, repeated);
        log += absl::StrCat("repeat ", n, " bytes at ", from, " x", times, "; ");
        break;
      }
      default: {  // swap two ranges
        if (data.size() < 4) break;
        const size_t n = 1 + rng.Below(std::min<size_t>(64, data.size() / 2));
        const size_t a = rng.Below(data.size() - n + 1);
        const size_t b = rng.Below(data.size() - n + 1);
        std::string x = data.substr(a, n), y = data.substr(b, n);
        if (a + n <= b || b + n <= a) {
          data.replace(a, n, y);
          data.replace(b, n, x);
          log += absl::StrCat("swap ", n, " bytes at ", a, " and ", b, "; ");
        }
        break;
      }
    }
  }
  return data;
}

std::string Gzip(const std::string& data) {
  z_stream z{};
  if (deflateInit2(&z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
    throw std::runtime_error("deflateInit2 failed");
  }
  std::string out(deflateBound(&z, data.size()) + 32, '\0');
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  z.avail_in = static_cast<uInt>(data.size());
  z.next_out = reinterpret_cast<Bytef*>(out.data());
  z.avail_out = static_cast<uInt>(out.size());
  const int rc = deflate(&z, Z_FINISH);
  out.resize(z.total_out);
  deflateEnd(&z);
  if (rc != Z_STREAM_END) throw std::runtime_error("deflate failed");
  return out;
}

std::vector<size_t> GzipBoundaries(size_t size) {
  std::vector<size_t> out = {0, size};
  if (size >= 18) out.insert(out.end(), {10, size - 8, size - 4, size / 2});
  return out;
}

std::optional<CheckpointParts> SplitCheckpoint(const std::string& bytes) {
  const std::string format = kFormatLine;
  if (!absl::StartsWith(bytes, format)) return std::nullopt;
  const size_t end = bytes.find('\n', format.size());
  if (end == std::string::npos) return std::nullopt;
  CheckpointParts parts;
  parts.header = json::parse(bytes.substr(format.size(), end - format.size()), nullptr, false);
  if (!parts.header.is_object()) return std::nullopt;
  parts.payload = bytes.substr(end + 1);
  return parts;
}

std::string JoinCheckpoint(const json& header, const std::string& payload) {
  return absl::StrCat(kFormatLine, header.dump(), "\n", payload);
}

std::string StampCheckpoint(const json& meta, const std::string& payload) {
  json header = json::object();
  header["payload_bytes"] = payload.size();
  header["crc32"] = Crc32(payload);
  header["meta_crc32"] = Crc32(meta.dump());
  header["meta"] = meta;
  return JoinCheckpoint(header, payload);
}

std::vector<ZipEntry> ListZipEntries(const std::string& zip) {
  std::vector<ZipEntry> out;
  const size_t eocd = zip.rfind(std::string("PK\x05\x06", 4));
  if (eocd == std::string::npos || eocd + 22 > zip.size()) return out;
  size_t count = ReadLe(zip, eocd + 10, 2);
  size_t at = ReadLe(zip, eocd + 16, 4);
  if (at == 0xFFFFFFFFu || count == 0xFFFF) {  // zip64: find the zip64 end record
    const size_t z64 = zip.rfind(std::string("PK\x06\x06", 4), eocd);
    if (z64 == std::string::npos || z64 + 56 > zip.size()) return out;
    count = ReadLe(zip, z64 + 32, 4);
    at = ReadLe(zip, z64 + 48, 4);
  }
  for (size_t i = 0; i < count && at + 46 <= zip.size(); ++i) {
    if (zip.compare(at, 4, std::string("PK\x01\x02", 4)) != 0) break;
    ZipEntry e;
    e.central_header = at;
    e.method = static_cast<int>(ReadLe(zip, at + 10, 2));
    e.size = ReadLe(zip, at + 20, 4);
    const size_t name_len = ReadLe(zip, at + 28, 2);
    const size_t extra_len = ReadLe(zip, at + 30, 2);
    const size_t comment_len = ReadLe(zip, at + 32, 2);
    e.local_header = ReadLe(zip, at + 42, 4);
    if (at + 46 + name_len > zip.size() || e.local_header + 30 > zip.size()) break;
    e.name = zip.substr(at + 46, name_len);
    const size_t local_name = ReadLe(zip, e.local_header + 26, 2);
    const size_t local_extra = ReadLe(zip, e.local_header + 28, 2);
    e.data = e.local_header + 30 + local_name + local_extra;
    if (e.size == 0xFFFFFFFFu || e.data + e.size > zip.size()) break;  // zip64 sizes: not needed here
    out.push_back(e);
    at += 46 + name_len + extra_len + comment_len;
  }
  return out;
}

std::vector<size_t> CheckpointBoundaries(const std::string& bytes) {
  std::vector<size_t> out = {0, bytes.size(), std::strlen(kFormatLine) - 1, std::strlen(kFormatLine)};
  const size_t header_end = bytes.find('\n', std::strlen(kFormatLine));
  if (header_end == std::string::npos) return out;
  out.push_back(header_end);
  out.push_back(header_end + 1);
  const std::string header = bytes.substr(0, header_end);
  for (const char* key : {"\"meta\"", "\"payload_bytes\"", "\"crc32\"", "\"vocabulary\""}) {
    const size_t at = header.find(key);
    if (at != std::string::npos) out.push_back(at);
  }
  const std::string payload = bytes.substr(header_end + 1);
  for (const ZipEntry& e : ListZipEntries(payload)) {
    for (size_t at : {e.local_header, e.data, e.data + e.size, e.central_header}) out.push_back(header_end + 1 + at);
  }
  const size_t eocd = payload.rfind(std::string("PK\x05\x06", 4));
  if (eocd != std::string::npos) out.push_back(header_end + 1 + eocd);
  return out;
}

std::string MutateCheckpoint(const std::string& bytes, Rng& rng, std::string& log) {
  const std::optional<CheckpointParts> parts = SplitCheckpoint(bytes);
  if (!parts) throw std::runtime_error("the seed is not a checkpoint");
  const uint64_t mode = rng.Below(100);
  if (mode < 20) {
    log += "raw: ";
    return MutateBytes(bytes, CheckpointBoundaries(bytes), rng, log);
  }
  if (mode < 50) {
    log += "meta (re-stamped): ";
    return MutateMeta(parts->header["meta"], parts->payload, rng, log);
  }
  if (mode < 60) {
    log += "header: ";
    return MutateHeader(*parts, rng, log);
  }
  if (mode < 72) {
    log += "payload (re-stamped): ";
    std::vector<size_t> boundaries = {0, parts->payload.size()};
    for (const ZipEntry& e : ListZipEntries(parts->payload)) {
      boundaries.insert(boundaries.end(), {e.local_header, e.data, e.data + e.size, e.central_header});
    }
    return StampCheckpoint(parts->header["meta"], MutateBytes(parts->payload, boundaries, rng, log));
  }
  if (mode < 82) {
    log += "zip field: ";
    return MutateZipField(*parts, rng, log);
  }
  log += "zip entry data: ";
  return MutateZipEntryData(*parts, rng, log);
}

// ---- processes -----------------------------------------------------------------------------

namespace {

double Now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// Reads both pipes until the child exits or the deadline passes (then kills its group).
Outcome Collect(pid_t pid, int out_fd, int err_fd, double timeout_s) {
  Outcome o;
  const double start = Now();
  struct pollfd fds[2] = {{out_fd, POLLIN, 0}, {err_fd, POLLIN, 0}};
  std::string* sinks[2] = {&o.out, &o.err};
  int open_fds = 2;
  char buffer[1 << 15];
  while (open_fds > 0) {
    const double left = timeout_s - (Now() - start);
    if (left <= 0) {
      o.timed_out = true;
      ::kill(-pid, SIGKILL);
      ::kill(pid, SIGKILL);
      break;
    }
    const int ready = ::poll(fds, 2, static_cast<int>(std::min(left, 1.0) * 1000) + 1);
    if (ready < 0 && errno != EINTR) break;
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      const ssize_t n = ::read(fds[i].fd, buffer, sizeof(buffer));
      if (n > 0) {
        if (sinks[i]->size() < (size_t{8} << 20)) sinks[i]->append(buffer, static_cast<size_t>(n));
      } else if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN)) {
        ::close(fds[i].fd);
        fds[i].fd = -1;
        --open_fds;
      }
    }
  }
  for (auto& f : fds) {
    if (f.fd >= 0) ::close(f.fd);
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  ::kill(-pid, SIGKILL);  // anything the child left behind in its group
  o.seconds = Now() - start;
  if (WIFEXITED(status)) o.exit_code = WEXITSTATUS(status);
  if (WIFSIGNALED(status)) o.signal = WTERMSIG(status);
  return o;
}

template <typename Child>
Outcome Spawn(Child&& child, double timeout_s) {
  int out[2], err[2];
  if (::pipe2(out, O_CLOEXEC) != 0 || ::pipe2(err, O_CLOEXEC) != 0) throw std::runtime_error("pipe failed");
  std::fflush(stdout);
  std::fflush(stderr);
  const pid_t pid = ::fork();
  if (pid < 0) throw std::runtime_error("fork failed");
  if (pid == 0) {
    ::setpgid(0, 0);
    const int null_fd = ::open("/dev/null", O_RDONLY);
    ::dup2(null_fd, 0);
    ::dup2(out[1], 1);
    ::dup2(err[1], 2);
    for (int sig : {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT}) ::signal(sig, SIG_DFL);
    child();
    ::_exit(127);
  }
  ::setpgid(pid, pid);
  ::close(out[1]);
  ::close(err[1]);
  return Collect(pid, out[0], err[0], timeout_s);
}

}  // namespace

Outcome RunProcess(const std::vector<std::string>& argv, double timeout_s) {
  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  return Spawn([&] { ::execv(args[0], args.data()); }, timeout_s);
}

Outcome RunInChild(const std::function<int()>& body, double timeout_s) {
  return Spawn(
      [&] {
        const int code = body();
        std::fflush(stdout);
        std::fflush(stderr);
        ::_exit(code);
      },
      timeout_s);
}

std::optional<std::string> CleanExitProblem(const Outcome& o, Allowed allowed) {
  if (o.timed_out) return absl::StrCat("hang: killed after ", static_cast<int>(o.seconds), " s");
  if (o.signal != 0) return absl::StrCat("killed by signal ", o.signal, " (", strsignal(o.signal), ")");
  for (const char* marker : {"terminate called", "Exception raised from", "AddressSanitizer", "runtime error:",
                             "Segmentation fault", "core dumped", "stack trace", "Aborted"}) {
    if (absl::StrContains(o.out, marker) || absl::StrContains(o.err, marker)) {
      return absl::StrCat("output contains '", marker, "'");
    }
  }
  if (o.exit_code == 0) return std::nullopt;
  const bool nonfinite_stop =
      allowed.nonfinite_stop && o.exit_code == 3 && absl::StrContains(o.err, "distrnn: error: non-finite");
  const bool out_of_memory =
      allowed.out_of_memory && o.exit_code == 1 &&
      (absl::StrContains(o.err, "bad_alloc") || absl::StrContains(o.err, "can't allocate memory"));
  if (o.exit_code != 2 && !nonfinite_stop && !out_of_memory) {
    return absl::StrCat("exit code ", o.exit_code, " (bad input must exit 2)");
  }
  // One error line, the last; before it only the rank-tagged log lines of common/logging.h.
  std::vector<std::string> lines;
  for (absl::string_view line : absl::StrSplit(o.err, '\n')) {
    if (!absl::StripAsciiWhitespace(line).empty()) lines.emplace_back(line);
  }
  // Abseil reports unknown or malformed flags itself, one "ERROR: ..." line per flag, and
  // exits (main turns that into 2): that is a clean error too. Its parser also warns, one
  // line each, about a flag whose value looks like a flag ("--cell=--cell"), which a
  // mutated flagfile may hold many times: its words, not a crash.
  int errors = 0, flag_errors = 0;
  for (const std::string& line : lines) {
    if (absl::StartsWith(line, "distrnn: error: ")) {
      ++errors;
    } else if (absl::StartsWith(line, "ERROR: ")) {
      ++flag_errors;
    } else if (absl::StrContains(line, "absl/flags/parse.cc") &&
               absl::StrContains(line, "RAW: Did you really mean to set flag")) {
      continue;
    } else if (!absl::StartsWith(line, "[rank ")) {
      return absl::StrCat("exit ", o.exit_code, " with a stray line on stderr: ", line.substr(0, 200));
    }
  }
  if (errors == 0 && flag_errors > 0) return std::nullopt;
  if (errors != 1 || flag_errors > 0) {
    return absl::StrCat("exit ", o.exit_code, " with ", errors, " 'distrnn: error:' and ", flag_errors,
                        " 'ERROR:' lines (want one)");
  }
  if (!absl::StartsWith(lines.back(), "distrnn: error: ")) return "the error is not the last line";
  return std::nullopt;
}

// ---- files -----------------------------------------------------------------------------------

std::string ReadFileOrDie(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + path);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

void WriteFileOrDie(const std::string& path, const std::string& contents) {
  std::filesystem::create_directories(std::filesystem::path(path).parent_path());
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(contents.data(), static_cast<std::streamsize>(contents.size()));
  if (!out) throw std::runtime_error("cannot write " + path);
}

void CopyTree(const std::string& from, const std::string& to) {
  std::filesystem::create_directories(to);
  std::filesystem::copy(from, to, std::filesystem::copy_options::recursive |
                                      std::filesystem::copy_options::overwrite_existing |
                                      std::filesystem::copy_options::copy_symlinks);
}

}  // namespace distrnn::fuzz
