// NcclCommunicator's logic against gmock fakes of NCCL and the CUDA runtime (one
// process, no GPU): version guard, init and teardown order, non-blocking init polling
// and its timeout, error mapping, the stream/event ordering of a collective, dtype and
// op mapping, host tensors on the host communicator, and the watchdog (timeout and
// asynchronous error -> ncclCommAbort -> the job ends). The bootstrap over several
// MPI ranks is in nccl_bootstrap_mpi_test.cc.
//
// Tests pass a CPU "device", so CPU tensors take the NCCL path into the fakes.
#include <ATen/ATen.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "comm/local_communicator.h"
#include "comm/nccl_communicator.h"
#include "comm/nccl_fakes.h"
#include "common/device.h"

namespace distrnn::testing {
namespace {

using comm::NcclCommunicator;
using comm::NcclDataType;
using comm::NcclOptions;
using comm::NcclRedOp;
using comm::NcclResult;
using comm::ReduceOp;
using ::testing::_;
using ::testing::AnyNumber;
using ::testing::DoAll;
using ::testing::Field;
using ::testing::HasSubstr;
using ::testing::InSequence;
using ::testing::Invoke;
using ::testing::NiceMock;
using ::testing::Return;
using ::testing::SetArgPointee;

const auto kComm = MockNcclApi::kComm;
const auto kCompute = MockCudaApi::kComputeStream;
const auto kNcclStream = MockCudaApi::kNcclStream;

// A world of one that counts what reaches it.
class CountingHost final : public comm::Communicator {
 public:
  int rank() const override { return 0; }
  int world_size() const override { return 1; }
  int local_rank() const override { return 0; }
  int local_size() const override { return 1; }
  const char* backend() const override { return "counting"; }
  absl::Status AllReduce(at::Tensor& t, ReduceOp op) override {
    ++tensor_calls;
    return local_.AllReduce(t, op);
  }
  absl::Status Broadcast(at::Tensor& t, int root) override {
    ++tensor_calls;
    return local_.Broadcast(t, root);
  }
  absl::Status Barrier() override {
    ++barriers;
    return absl::OkStatus();
  }
  absl::StatusOr<std::vector<double>> AllGather(double v) override {
    ++gathers;
    return local_.AllGather(v);
  }
  absl::StatusOr<std::unique_ptr<comm::Work>> AllReduceAsync(at::Tensor& t, ReduceOp op) override {
    ++tensor_calls;
    return local_.AllReduceAsync(t, op);
  }
  absl::StatusOr<std::unique_ptr<comm::Work>> BroadcastAsync(at::Tensor& t, int root) override {
    ++tensor_calls;
    return local_.BroadcastAsync(t, root);
  }
  absl::StatusOr<std::unique_ptr<comm::Work>> AllGatherAsync(const at::Tensor& in, at::Tensor& out) override {
    ++tensor_calls;
    return local_.AllGatherAsync(in, out);
  }
  [[noreturn]] void Abort(int code) override { local_.Abort(code); }

  int tensor_calls = 0, barriers = 0, gathers = 0;

 private:
  comm::LocalCommunicator local_;
};

class NcclCommunicatorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    nccl_->SetUpDefaults();
    cuda_->SetUpDefaults();
  }

  // Watchdog asleep unless a test asks (poll_interval_s large): strict call sequences
  // are not interleaved with its polls.
  absl::StatusOr<std::unique_ptr<NcclCommunicator>> Make(c10::Device device = c10::Device(c10::kCPU),
                                                          NcclOptions options = Quiet(),
                                                          std::unique_ptr<comm::Communicator> host = nullptr) {
    if (!options.on_fatal) {
      options.on_fatal = [this](const absl::Status& s) {
        std::lock_guard<std::mutex> lock(mu_);
        fatal_.push_back(s);
        cv_.notify_all();
      };
    }
    if (host == nullptr) host = std::make_unique<comm::LocalCommunicator>();
    return NcclCommunicator::Create(std::move(host), device, std::move(options), nccl_, cuda_);
  }

  static NcclOptions Quiet() {
    NcclOptions o;
    o.collective_timeout_s = 300;
    o.poll_interval_s = 1000;
    return o;
  }

  static NcclOptions Watchful(double timeout_s) {
    NcclOptions o;
    o.collective_timeout_s = timeout_s;
    o.poll_interval_s = 0.01;
    return o;
  }

  // The first fatal status, waiting up to `seconds`.
  absl::StatusOr<absl::Status> WaitForFatal(double seconds) {
    std::unique_lock<std::mutex> lock(mu_);
    if (!cv_.wait_for(lock, std::chrono::duration<double>(seconds), [this] { return !fatal_.empty(); })) {
      return absl::DeadlineExceededError("no fatal error reported");
    }
    return fatal_.front();
  }

  size_t FatalCount() {
    std::lock_guard<std::mutex> lock(mu_);
    return fatal_.size();
  }

  std::shared_ptr<NiceMock<MockNcclApi>> nccl_ = std::make_shared<NiceMock<MockNcclApi>>();
  std::shared_ptr<NiceMock<MockCudaApi>> cuda_ = std::make_shared<NiceMock<MockCudaApi>>();
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<absl::Status> fatal_;
};

TEST(NcclVersion, DecodesBothEncodings) {
  EXPECT_EQ(comm::NcclVersionString(2708), "2.7.8");    // X*1000+Y*100+Z up to 2.8
  EXPECT_EQ(comm::NcclVersionString(21803), "2.18.3");  // X*10000+Y*100+Z after
  EXPECT_EQ(comm::NcclVersionString(23007), "2.30.7");
  EXPECT_EQ(comm::DecodeNcclVersion(22809).minor, 28);
}

TEST_F(NcclCommunicatorTest, InitAndTeardownOrder) {
  EXPECT_CALL(*nccl_, CommAbort(_)).Times(0);
  {
    InSequence seq;
    EXPECT_CALL(*nccl_, GetVersion(_));
    EXPECT_CALL(*cuda_, SetDevice(0));
    EXPECT_CALL(*nccl_, GetUniqueId(_));
    EXPECT_CALL(*cuda_, CreateStream(0));
    EXPECT_CALL(*cuda_, CreateEvent());
    EXPECT_CALL(*nccl_, CommInitRankConfig(_, 1, _, 0, Field(&comm::NcclConfig::blocking, false)));
    EXPECT_CALL(*nccl_, CommGetAsyncError(kComm, _));
    // Teardown: finalize, wait for it, destroy; the events after the communicator.
    EXPECT_CALL(*nccl_, CommFinalize(kComm));
    EXPECT_CALL(*nccl_, CommGetAsyncError(kComm, _));
    EXPECT_CALL(*nccl_, CommDestroy(kComm));
    EXPECT_CALL(*cuda_, DestroyEvent(MockCudaApi::Event(0)));
  }
  auto comm = Make(c10::Device(c10::kCUDA, 0));
  ASSERT_TRUE(comm.ok()) << comm.status();
  EXPECT_STREQ((*comm)->backend(), "nccl");
  comm->reset();
}

TEST_F(NcclCommunicatorTest, NonBlockingInitIsPolledUntilDone) {
  EXPECT_CALL(*nccl_, CommInitRankConfig(_, _, _, _, _))
      .WillOnce(DoAll(SetArgPointee<0>(kComm), Return(NcclResult::kInProgress)));
  EXPECT_CALL(*nccl_, CommGetAsyncError(kComm, _))
      .WillOnce(DoAll(SetArgPointee<1>(NcclResult::kInProgress), Return(NcclResult::kSuccess)))
      .WillOnce(DoAll(SetArgPointee<1>(NcclResult::kInProgress), Return(NcclResult::kSuccess)))
      .WillRepeatedly(DoAll(SetArgPointee<1>(NcclResult::kSuccess), Return(NcclResult::kSuccess)));
  auto comm = Make();
  ASSERT_TRUE(comm.ok()) << comm.status();
}

TEST_F(NcclCommunicatorTest, InitStuckInProgressTimesOutAndAborts) {
  EXPECT_CALL(*nccl_, CommGetAsyncError(kComm, _))
      .WillRepeatedly(DoAll(SetArgPointee<1>(NcclResult::kInProgress), Return(NcclResult::kSuccess)));
  EXPECT_CALL(*nccl_, CommAbort(kComm)).Times(1);
  EXPECT_CALL(*nccl_, CommFinalize(_)).Times(0);
  EXPECT_CALL(*nccl_, CommDestroy(_)).Times(0);
  NcclOptions options = Quiet();
  options.collective_timeout_s = 0.2;
  const auto start = std::chrono::steady_clock::now();
  auto comm = Make(c10::Device(c10::kCPU), options);
  const double waited = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  ASSERT_FALSE(comm.ok());
  EXPECT_EQ(comm.status().code(), absl::StatusCode::kDeadlineExceeded) << comm.status();
  EXPECT_THAT(std::string(comm.status().message()), HasSubstr("ncclCommInitRankConfig on rank 0/1"));
  EXPECT_THAT(std::string(comm.status().message()), HasSubstr("still in progress"));
  EXPECT_GE(waited, 0.2);
  EXPECT_LT(waited, 5.0);
}

TEST_F(NcclCommunicatorTest, InitErrorNamesCallErrorStringRankAndHost) {
  EXPECT_CALL(*nccl_, CommInitRankConfig(_, _, _, _, _)).WillOnce(Return(NcclResult::kSystemError));
  EXPECT_CALL(*nccl_, GetLastError(_)).WillRepeatedly(Return("socket connect to 10.0.0.2 failed"));
  EXPECT_CALL(*nccl_, CommAbort(_)).Times(0);  // no communicator was made
  auto comm = Make();
  ASSERT_FALSE(comm.ok());
  EXPECT_EQ(comm.status().code(), absl::StatusCode::kUnavailable);
  const std::string message(comm.status().message());
  EXPECT_THAT(message, HasSubstr("ncclCommInitRankConfig failed on rank 0/1 (host " + common::HostName()));
  EXPECT_THAT(message, HasSubstr("unhandled system error"));
  EXPECT_THAT(message, HasSubstr("socket connect to 10.0.0.2 failed"));
}

TEST_F(NcclCommunicatorTest, UniqueIdFailureStopsBeforeInit) {
  EXPECT_CALL(*nccl_, GetUniqueId(_)).WillOnce(Return(NcclResult::kInternalError));
  EXPECT_CALL(*nccl_, CommInitRankConfig(_, _, _, _, _)).Times(0);
  auto comm = Make();
  ASSERT_FALSE(comm.ok());
  EXPECT_THAT(std::string(comm.status().message()), HasSubstr("ncclGetUniqueId failed on rank 0/1"));
}

TEST_F(NcclCommunicatorTest, VersionGuardRefusesAnotherMinorVersion) {
  EXPECT_CALL(*nccl_, GetVersion(_)).WillRepeatedly(DoAll(SetArgPointee<0>(22809), Return(NcclResult::kSuccess)));
  EXPECT_CALL(*nccl_, GetUniqueId(_)).Times(0);
  EXPECT_CALL(*nccl_, CommInitRankConfig(_, _, _, _, _)).Times(0);
  auto comm = Make();
  ASSERT_FALSE(comm.ok());
  EXPECT_EQ(comm.status().code(), absl::StatusCode::kFailedPrecondition);
  const std::string message(comm.status().message());
  EXPECT_THAT(message, HasSubstr("built against nccl.h 2.30.7 but the loaded libnccl is 2.28.9"));
  EXPECT_THAT(message, HasSubstr("/fake/libnccl.so.2"));
  EXPECT_THAT(message, HasSubstr("rank 0/1"));
}

TEST_F(NcclCommunicatorTest, VersionGuardAcceptsAnotherPatchLevel) {
  EXPECT_CALL(*nccl_, GetVersion(_)).WillRepeatedly(DoAll(SetArgPointee<0>(23012), Return(NcclResult::kSuccess)));
  EXPECT_TRUE(comm::CheckNcclVersion(*nccl_).ok());
  EXPECT_TRUE(Make().ok());
}

TEST_F(NcclCommunicatorTest, AllReduceIsOrderedAfterComputeAndWaitedOnByIt) {
  auto comm = Make();
  ASSERT_TRUE(comm.ok()) << comm.status();
  at::Tensor t = at::ones({16});
  void* data = t.data_ptr();
  const comm::CudaEvent ready = MockCudaApi::Event(0), end = MockCudaApi::Event(1);
  EXPECT_CALL(*cuda_, EventSynchronize(_)).Times(0);  // the host never blocks
  {
    InSequence seq;
    EXPECT_CALL(*cuda_, CurrentStream(_)).WillOnce(Return(kCompute));
    EXPECT_CALL(*cuda_, RecordEvent(ready, kCompute));
    EXPECT_CALL(*cuda_, StreamWaitEvent(kNcclStream, ready));
    EXPECT_CALL(*nccl_, AllReduce(data, data, 16, NcclDataType::kFloat32, NcclRedOp::kSum, kComm, kNcclStream));
    EXPECT_CALL(*cuda_, RecordStream(_, kNcclStream, _));
    EXPECT_CALL(*cuda_, CreateEvent());
    EXPECT_CALL(*cuda_, RecordEvent(end, kNcclStream));
    // Wait(): the compute stream waits for the end event.
    EXPECT_CALL(*cuda_, CurrentStream(_)).WillOnce(Return(kCompute));
    EXPECT_CALL(*cuda_, StreamWaitEvent(kCompute, end));
  }
  auto work = (*comm)->AllReduceAsync(t, ReduceOp::kSum);
  ASSERT_TRUE(work.ok()) << work.status();
  EXPECT_TRUE((*work)->Wait().ok());
  EXPECT_TRUE((*work)->error().ok());
}

TEST_F(NcclCommunicatorTest, DtypesAndOpsMapToNccl) {
  auto comm = Make();
  ASSERT_TRUE(comm.ok()) << comm.status();
  struct Case {
    at::ScalarType dtype;
    ReduceOp op;
    NcclDataType type;
    NcclRedOp nccl_op;
  };
  const Case cases[] = {{at::kFloat, ReduceOp::kSum, NcclDataType::kFloat32, NcclRedOp::kSum},
                        {at::kDouble, ReduceOp::kAverage, NcclDataType::kFloat64, NcclRedOp::kAvg},
                        {at::kHalf, ReduceOp::kMax, NcclDataType::kFloat16, NcclRedOp::kMax},
                        {at::kBFloat16, ReduceOp::kAverage, NcclDataType::kBfloat16, NcclRedOp::kAvg},
                        {at::kInt, ReduceOp::kSum, NcclDataType::kInt32, NcclRedOp::kSum},
                        {at::kLong, ReduceOp::kMax, NcclDataType::kInt64, NcclRedOp::kMax}};
  for (const Case& c : cases) {
    at::Tensor t = at::ones({5}, c.dtype);
    EXPECT_CALL(*nccl_, AllReduce(_, _, 5, c.type, c.nccl_op, kComm, kNcclStream)).Times(1);
    EXPECT_TRUE((*comm)->AllReduce(t, c.op).ok()) << c10::toString(c.dtype);
    ::testing::Mock::VerifyAndClearExpectations(nccl_.get());
  }
  // Refused before any NCCL call: integer average, strided tensors, bad roots, sizes.
  EXPECT_CALL(*nccl_, AllReduce(_, _, _, _, _, _, _)).Times(0);
  EXPECT_CALL(*nccl_, Broadcast(_, _, _, _, _, _, _)).Times(0);
  EXPECT_CALL(*nccl_, AllGather(_, _, _, _, _, _)).Times(0);
  at::Tensor ints = at::ones({3}, at::kLong);
  EXPECT_EQ((*comm)->AllReduce(ints, ReduceOp::kAverage).code(), absl::StatusCode::kInvalidArgument);
  at::Tensor strided = at::ones({4, 4}).t();
  EXPECT_EQ((*comm)->AllReduce(strided, ReduceOp::kSum).code(), absl::StatusCode::kInvalidArgument);
  at::Tensor f = at::ones({3});
  EXPECT_EQ((*comm)->Broadcast(f, 1).code(), absl::StatusCode::kInvalidArgument);
  at::Tensor wrong = at::ones({4});
  EXPECT_EQ((*comm)->AllGatherTensor(f, wrong).code(), absl::StatusCode::kInvalidArgument);
  ::testing::Mock::VerifyAndClearExpectations(nccl_.get());

  // Broadcast and all-gather move bytes, so every dtype travels.
  at::Tensor b = at::ones({10}, at::kDouble);
  EXPECT_CALL(*nccl_, Broadcast(b.data_ptr(), b.data_ptr(), 80, NcclDataType::kUint8, 0, kComm, kNcclStream));
  EXPECT_TRUE((*comm)->Broadcast(b, 0).ok());
  at::Tensor in = at::ones({3}, at::kFloat), out = at::zeros({3}, at::kFloat);
  EXPECT_CALL(*nccl_, AllGather(in.data_ptr(), out.data_ptr(), 12, NcclDataType::kUint8, kComm, kNcclStream));
  EXPECT_TRUE((*comm)->AllGatherTensor(in, out).ok());
}

TEST_F(NcclCommunicatorTest, CollectiveErrorNamesCallRankAndHost) {
  auto comm = Make();
  ASSERT_TRUE(comm.ok()) << comm.status();
  EXPECT_CALL(*nccl_, AllReduce(_, _, _, _, _, _, _)).WillOnce(Return(NcclResult::kInvalidUsage));
  EXPECT_CALL(*nccl_, GetLastError(kComm)).WillRepeatedly(Return("operation on a destroyed communicator"));
  at::Tensor t = at::ones({4});
  absl::Status s = (*comm)->AllReduce(t, ReduceOp::kSum);
  EXPECT_EQ(s.code(), absl::StatusCode::kInternal);
  EXPECT_THAT(std::string(s.message()), HasSubstr("ncclAllReduce failed on rank 0/1 (host " + common::HostName()));
  EXPECT_THAT(std::string(s.message()), HasSubstr("invalid usage"));
  EXPECT_THAT(std::string(s.message()), HasSubstr("operation on a destroyed communicator"));
  // Timeouts and remote errors map to their own codes.
  EXPECT_CALL(*nccl_, AllReduce(_, _, _, _, _, _, _))
      .WillOnce(Return(NcclResult::kRemoteError))
      .WillOnce(Return(NcclResult::kTimeout));
  EXPECT_EQ((*comm)->AllReduce(t, ReduceOp::kSum).code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ((*comm)->AllReduce(t, ReduceOp::kSum).code(), absl::StatusCode::kDeadlineExceeded);
}

TEST_F(NcclCommunicatorTest, CollectiveInProgressIsPolled) {
  auto comm = Make();
  ASSERT_TRUE(comm.ok()) << comm.status();
  EXPECT_CALL(*nccl_, AllReduce(_, _, _, _, _, _, _)).WillOnce(Return(NcclResult::kInProgress));
  EXPECT_CALL(*nccl_, CommGetAsyncError(kComm, _))
      .WillOnce(DoAll(SetArgPointee<1>(NcclResult::kInProgress), Return(NcclResult::kSuccess)))
      .WillRepeatedly(DoAll(SetArgPointee<1>(NcclResult::kSuccess), Return(NcclResult::kSuccess)));
  at::Tensor t = at::ones({4});
  EXPECT_TRUE((*comm)->AllReduce(t, ReduceOp::kSum).ok());
}

TEST_F(NcclCommunicatorTest, HostTensorsTravelOnTheHostCommunicator) {
  auto host = std::make_unique<CountingHost>();
  CountingHost* counting = host.get();
  auto comm = Make(c10::Device(c10::kCUDA, 0), Quiet(), std::move(host));
  ASSERT_TRUE(comm.ok()) << comm.status();
  const int gathers_at_init = counting->gathers;      // the ranks' agreement at set-up
  const int tensors_at_init = counting->tensor_calls;  // the id broadcast at set-up
  EXPECT_EQ(tensors_at_init, 1);
  EXPECT_CALL(*nccl_, AllReduce(_, _, _, _, _, _, _)).Times(0);
  EXPECT_CALL(*nccl_, Broadcast(_, _, _, _, _, _, _)).Times(0);
  EXPECT_CALL(*nccl_, AllGather(_, _, _, _, _, _)).Times(0);
  at::Tensor t = at::ones({3}, at::kDouble);
  EXPECT_TRUE((*comm)->AllReduce(t, ReduceOp::kSum).ok());
  EXPECT_TRUE((*comm)->Broadcast(t, 0).ok());
  auto work = (*comm)->AllReduceAsync(t, ReduceOp::kSum);
  ASSERT_TRUE(work.ok());
  EXPECT_TRUE((*work)->Wait().ok());
  EXPECT_TRUE(comm::AllReduceScalar(**comm, 2.0, ReduceOp::kSum).ok());
  std::string text = "hello";
  EXPECT_TRUE(comm::BroadcastString(**comm, text, 0).ok());
  EXPECT_TRUE((*comm)->AllGather(1.0).ok());
  EXPECT_TRUE((*comm)->Barrier().ok());
  EXPECT_EQ(counting->tensor_calls, tensors_at_init + 3);  // world 1: the scalar helpers skip the communicator
  EXPECT_EQ(counting->gathers, gathers_at_init + 1);
  EXPECT_EQ(counting->barriers, 1);
}

TEST_F(NcclCommunicatorTest, BarrierWaitsOnTheHostForCollectivesInFlight) {
  EXPECT_CALL(*cuda_, EventQuery(_)).WillRepeatedly(Return(absl::StatusOr<bool>(false)));
  auto comm = Make();
  ASSERT_TRUE(comm.ok()) << comm.status();
  at::Tensor t = at::ones({4});
  auto work = (*comm)->AllReduceAsync(t, ReduceOp::kSum);
  ASSERT_TRUE(work.ok());
  EXPECT_FALSE((*work)->IsCompleted());
  EXPECT_EQ((*comm)->in_flight(), 1u);
  EXPECT_CALL(*cuda_, EventSynchronize(MockCudaApi::Event(1))).Times(1);
  EXPECT_TRUE((*comm)->Barrier().ok());
}

TEST_F(NcclCommunicatorTest, WatchdogForgetsFinishedCollectives) {
  auto comm = Make(c10::Device(c10::kCPU), Watchful(60));
  ASSERT_TRUE(comm.ok()) << comm.status();
  at::Tensor t = at::ones({4});
  ASSERT_TRUE((*comm)->AllReduce(t, ReduceOp::kSum).ok());
  for (int i = 0; i < 500 && (*comm)->in_flight() > 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  EXPECT_EQ((*comm)->in_flight(), 0u);
  EXPECT_EQ(FatalCount(), 0u);
}

TEST_F(NcclCommunicatorTest, WatchdogTimeoutAbortsNcclAndEndsTheJob) {
  EXPECT_CALL(*cuda_, EventQuery(_)).WillRepeatedly(Return(absl::StatusOr<bool>(false)));  // a peer never joins
  EXPECT_CALL(*nccl_, CommAbort(kComm)).Times(1);
  EXPECT_CALL(*nccl_, CommFinalize(_)).Times(0);
  EXPECT_CALL(*nccl_, CommDestroy(_)).Times(0);
  auto comm = Make(c10::Device(c10::kCPU), Watchful(0.2));
  ASSERT_TRUE(comm.ok()) << comm.status();
  at::Tensor t = at::ones({4});
  const auto start = std::chrono::steady_clock::now();
  auto work = (*comm)->AllReduceAsync(t, ReduceOp::kSum);
  ASSERT_TRUE(work.ok());
  absl::StatusOr<absl::Status> fatal = WaitForFatal(10);
  const double waited = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  ASSERT_TRUE(fatal.ok()) << fatal.status();
  EXPECT_EQ(fatal->code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_THAT(std::string(fatal->message()), HasSubstr("ncclAllReduce #0 on rank 0/1 (host " + common::HostName()));
  EXPECT_THAT(std::string(fatal->message()), HasSubstr("collective timeout 0.2 s"));
  EXPECT_GE(waited, 0.2);
  EXPECT_LT(waited, 5.0);
  // Afterwards the work reports the error and nothing new starts.
  EXPECT_TRUE((*work)->IsCompleted());
  EXPECT_EQ((*work)->Wait().code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_EQ((*comm)->AllReduce(t, ReduceOp::kSum).code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_EQ(FatalCount(), 1u);
}

TEST_F(NcclCommunicatorTest, WatchdogAbortsOnAnAsynchronousNcclError) {
  std::atomic<bool> broken{false};
  EXPECT_CALL(*nccl_, CommGetAsyncError(kComm, _)).WillRepeatedly(Invoke([&](comm::NcclComm, NcclResult* state) {
    *state = broken ? NcclResult::kRemoteError : NcclResult::kSuccess;
    return NcclResult::kSuccess;
  }));
  EXPECT_CALL(*nccl_, CommAbort(kComm)).Times(1);
  EXPECT_CALL(*nccl_, CommDestroy(_)).Times(0);
  auto comm = Make(c10::Device(c10::kCPU), Watchful(300));
  ASSERT_TRUE(comm.ok()) << comm.status();
  broken = true;  // a peer died
  absl::StatusOr<absl::Status> fatal = WaitForFatal(10);
  ASSERT_TRUE(fatal.ok()) << fatal.status();
  EXPECT_EQ(fatal->code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(std::string(fatal->message()), HasSubstr("remote process exited or there was a network error"));
  EXPECT_THAT(std::string(fatal->message()), HasSubstr("rank 0/1"));
  EXPECT_FALSE((*comm)->fatal_status().ok());
}

TEST_F(NcclCommunicatorTest, TeardownAfterAnErrorAbortsInsteadOfDestroying) {
  EXPECT_CALL(*nccl_, CommFinalize(kComm)).WillOnce(Return(NcclResult::kRemoteError));
  EXPECT_CALL(*nccl_, CommAbort(kComm)).Times(1);
  EXPECT_CALL(*nccl_, CommDestroy(_)).Times(0);
  auto comm = Make();
  ASSERT_TRUE(comm.ok()) << comm.status();
  comm->reset();
}

using NcclCommunicatorDeathTest = NcclCommunicatorTest;

TEST_F(NcclCommunicatorDeathTest, DefaultWatchdogActionEndsTheProcessWithCode75) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(
      {
        ::testing::Mock::AllowLeak(nccl_.get());  // the process ends without destroying them
        ::testing::Mock::AllowLeak(cuda_.get());
        EXPECT_CALL(*cuda_, EventQuery(_)).WillRepeatedly(Return(absl::StatusOr<bool>(false)));
        NcclOptions options;
        options.collective_timeout_s = 0.1;
        options.poll_interval_s = 0.01;
        options.on_fatal = nullptr;  // the default: the host communicator's Abort
        auto comm = NcclCommunicator::Create(std::make_unique<comm::LocalCommunicator>(), c10::Device(c10::kCPU),
                                             options, nccl_, cuda_);
        at::Tensor t = at::ones({4});
        auto work = (*comm)->AllReduceAsync(t, ReduceOp::kSum);
        std::this_thread::sleep_for(std::chrono::seconds(20));
      },
      ::testing::ExitedWithCode(comm::kNcclFatalExitCode), "has not finished after");
}

TEST_F(NcclCommunicatorDeathTest, AbortEndsTheJobThroughTheHost) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(
      {
        ::testing::Mock::AllowLeak(nccl_.get());
        ::testing::Mock::AllowLeak(cuda_.get());
        auto comm = Make();
        (*comm)->Abort(3);
      },
      ::testing::ExitedWithCode(3), "aborts NCCL and ends the job with code 3");
}

}  // namespace
}  // namespace distrnn::testing
