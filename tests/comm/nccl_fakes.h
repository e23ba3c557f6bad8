// gmock fakes of NcclApi and CudaApi (the torchcomms approach): the NcclCommunicator's
// own logic -- bootstrap, init/abort order, stream/event ordering, error mapping, the
// watchdog -- runs against them without a GPU. Defaults (ON_CALL) behave like a
// healthy NCCL and CUDA: every call succeeds, events have completed, version 2.30.7.
#pragma once

#include <gmock/gmock.h>

#include <atomic>
#include <cstdint>
#include <cstring>
#include <string>

#include "comm/cuda_api.h"
#include "comm/nccl_api.h"

namespace distrnn::testing {

class MockNcclApi : public comm::NcclApi {
 public:
  static constexpr int kVersion = 23007;  // 2.30.7
  static inline comm::NcclComm const kComm = reinterpret_cast<comm::NcclComm>(0xC0FFEE);

  MOCK_METHOD(int, CompiledVersion, (), (const, override));
  MOCK_METHOD(comm::NcclResult, GetVersion, (int* version), (override));
  MOCK_METHOD(std::string, LibraryPath, (), (override));
  MOCK_METHOD(std::string, GetErrorString, (comm::NcclResult result), (override));
  MOCK_METHOD(std::string, GetLastError, (comm::NcclComm comm), (override));
  MOCK_METHOD(comm::NcclResult, GetUniqueId, (comm::NcclUniqueId * id), (override));
  MOCK_METHOD(comm::NcclResult, CommInitRankConfig,
              (comm::NcclComm * comm, int nranks, const comm::NcclUniqueId& id, int rank,
               const comm::NcclConfig& config),
              (override));
  MOCK_METHOD(comm::NcclResult, CommGetAsyncError, (comm::NcclComm comm, comm::NcclResult* state), (override));
  MOCK_METHOD(comm::NcclResult, CommFinalize, (comm::NcclComm comm), (override));
  MOCK_METHOD(comm::NcclResult, CommDestroy, (comm::NcclComm comm), (override));
  MOCK_METHOD(comm::NcclResult, CommAbort, (comm::NcclComm comm), (override));
  MOCK_METHOD(comm::NcclResult, AllReduce,
              (const void* send, void* recv, size_t count, comm::NcclDataType type, comm::NcclRedOp op,
               comm::NcclComm comm, comm::CudaStream stream),
              (override));
  MOCK_METHOD(comm::NcclResult, Broadcast,
              (const void* send, void* recv, size_t count, comm::NcclDataType type, int root, comm::NcclComm comm,
               comm::CudaStream stream),
              (override));
  MOCK_METHOD(comm::NcclResult, AllGather,
              (const void* send, void* recv, size_t send_count, comm::NcclDataType type, comm::NcclComm comm,
               comm::CudaStream stream),
              (override));

  // A healthy NCCL: ids filled with `id_fill`, init succeeds at once.
  void SetUpDefaults(char id_fill = 0x42) {
    using ::testing::_;
    using ::testing::DoAll;
    using ::testing::Invoke;
    using ::testing::Return;
    using ::testing::SetArgPointee;
    ON_CALL(*this, CompiledVersion()).WillByDefault(Return(kVersion));
    ON_CALL(*this, GetVersion(_)).WillByDefault(DoAll(SetArgPointee<0>(kVersion), Return(comm::NcclResult::kSuccess)));
    ON_CALL(*this, LibraryPath()).WillByDefault(Return("/fake/libnccl.so.2"));
    ON_CALL(*this, GetErrorString(_)).WillByDefault(Invoke([](comm::NcclResult r) {
      switch (r) {
        case comm::NcclResult::kSystemError: return std::string("unhandled system error");
        case comm::NcclResult::kRemoteError: return std::string("remote process exited or there was a network error");
        case comm::NcclResult::kInvalidUsage: return std::string("invalid usage");
        case comm::NcclResult::kTimeout: return std::string("timeout");
        default: return std::string("nccl result ") + std::to_string(static_cast<int>(r));
      }
    }));
    ON_CALL(*this, GetLastError(_)).WillByDefault(Return(""));
    ON_CALL(*this, GetUniqueId(_)).WillByDefault(Invoke([id_fill](comm::NcclUniqueId* id) {
      std::memset(id->internal, id_fill, sizeof(id->internal));
      return comm::NcclResult::kSuccess;
    }));
    ON_CALL(*this, CommInitRankConfig(_, _, _, _, _))
        .WillByDefault(DoAll(SetArgPointee<0>(kComm), Return(comm::NcclResult::kSuccess)));
    ON_CALL(*this, CommGetAsyncError(_, _))
        .WillByDefault(DoAll(SetArgPointee<1>(comm::NcclResult::kSuccess), Return(comm::NcclResult::kSuccess)));
    ON_CALL(*this, CommFinalize(_)).WillByDefault(Return(comm::NcclResult::kSuccess));
    ON_CALL(*this, CommDestroy(_)).WillByDefault(Return(comm::NcclResult::kSuccess));
    ON_CALL(*this, CommAbort(_)).WillByDefault(Return(comm::NcclResult::kSuccess));
    ON_CALL(*this, AllReduce(_, _, _, _, _, _, _)).WillByDefault(Return(comm::NcclResult::kSuccess));
    ON_CALL(*this, Broadcast(_, _, _, _, _, _, _)).WillByDefault(Return(comm::NcclResult::kSuccess));
    ON_CALL(*this, AllGather(_, _, _, _, _, _)).WillByDefault(Return(comm::NcclResult::kSuccess));
  }
};

class MockCudaApi : public comm::CudaApi {
 public:
  static inline comm::CudaStream const kComputeStream = reinterpret_cast<comm::CudaStream>(0x5100);
  static inline comm::CudaStream const kNcclStream = reinterpret_cast<comm::CudaStream>(0x5200);

  MOCK_METHOD(absl::Status, SetDevice, (int device), (override));
  MOCK_METHOD(comm::CudaStream, CurrentStream, (int device), (override));
  MOCK_METHOD(absl::StatusOr<comm::CudaStream>, CreateStream, (int device), (override));
  MOCK_METHOD(absl::StatusOr<comm::CudaEvent>, CreateEvent, (), (override));
  MOCK_METHOD(void, DestroyEvent, (comm::CudaEvent event), (override));
  MOCK_METHOD(absl::Status, RecordEvent, (comm::CudaEvent event, comm::CudaStream stream), (override));
  MOCK_METHOD(absl::Status, StreamWaitEvent, (comm::CudaStream stream, comm::CudaEvent event), (override));
  MOCK_METHOD(absl::StatusOr<bool>, EventQuery, (comm::CudaEvent event), (override));
  MOCK_METHOD(absl::Status, EventSynchronize, (comm::CudaEvent event), (override));
  MOCK_METHOD(void, RecordStream, (const at::Tensor& tensor, comm::CudaStream stream, int device), (override));

  // Events are numbered 0xE000, 0xE001, ... in creation order; all have completed.
  void SetUpDefaults() {
    using ::testing::_;
    using ::testing::Invoke;
    using ::testing::Return;
    ON_CALL(*this, SetDevice(_)).WillByDefault(Return(absl::OkStatus()));
    ON_CALL(*this, CurrentStream(_)).WillByDefault(Return(kComputeStream));
    ON_CALL(*this, CreateStream(_)).WillByDefault(Return(absl::StatusOr<comm::CudaStream>(kNcclStream)));
    ON_CALL(*this, CreateEvent()).WillByDefault(Invoke([this]() -> absl::StatusOr<comm::CudaEvent> {
      return Event(next_event_++);
    }));
    ON_CALL(*this, RecordEvent(_, _)).WillByDefault(Return(absl::OkStatus()));
    ON_CALL(*this, StreamWaitEvent(_, _)).WillByDefault(Return(absl::OkStatus()));
    ON_CALL(*this, EventQuery(_)).WillByDefault(Return(absl::StatusOr<bool>(true)));
    ON_CALL(*this, EventSynchronize(_)).WillByDefault(Return(absl::OkStatus()));
  }

  static comm::CudaEvent Event(int n) { return reinterpret_cast<comm::CudaEvent>(static_cast<uintptr_t>(0xE000 + n)); }

 private:
  std::atomic<int> next_event_{0};
};

}  // namespace distrnn::testing
