import Checkpointing
import Foundation

struct Message: Codable, Sendable, Equatable {
    var role: String
    var text: String
}

struct ConversationState: Codable, Sendable {
    var messages: [Message] = []
    var turn = 0
    var summary = "A support conversation about checkpointing."
}

/// The same conversation with a message type that is not `Equatable`: the façade finds what
/// changed by encoded bytes, so it must store and cost the same.
struct PlainMessage: Codable, Sendable {
    var role: String
    var text: String
}

struct PlainConversationState: Codable, Sendable {
    var messages: [PlainMessage] = []
    var turn = 0
    var summary = "A support conversation about checkpointing."
}

/// The conversation with a ~1 KB profile, plain or as a sealed field.
struct ProfiledState: Codable, Sendable {
    var messages: [Message] = []
    var turn = 0
    var profile = String(repeating: "profile ", count: 128)
}

struct SealedProfileState: Codable, Sendable {
    var messages: [Message] = []
    var turn = 0
    @Sealed var profile = String(repeating: "profile ", count: 128)
}

/// A bytes-level write that appends one message and changes the turn.
func appendingWrite(thread: ThreadID, parent: CheckpointID?, step: Int, element: Data) -> CheckpointWrite {
    CheckpointWrite(
        thread: thread, parentID: parent, step: step,
        channels: [
            "messages": parent == nil ? .list([element]) : .append([element]), "turn": .value(Data("\(step)".utf8)),
        ])
}

func message(_ index: Int) -> Message {
    let words = ["agent", "checkpoint", "thread", "state", "resume", "tool", "reply", "human", "plan", "step", "value"]
    var text = "\(index): "
    var seed = UInt64(index) &* 2_654_435_761 &+ 1
    while text.utf8.count < 300 {
        seed = seed &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
        text += words[Int(seed >> 33) % words.count] + " "
    }
    return Message(role: index % 2 == 0 ? "user" : "assistant", text: String(text.prefix(300)))
}
