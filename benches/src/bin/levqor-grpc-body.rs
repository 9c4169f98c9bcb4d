//! Writes to stdout the body of one unary gRPC `levqor.v1.JobsService/Submit` call (the
//! 5-byte gRPC frame header, then the message), for load generators that post a fixed body
//! (`h2load -d`). The job is the one the REST intake benchmark posts.

use levqor_grpc::pb;
use prost::Message;
use std::io::Write;

fn main() {
    let workflow = serde_json::json!({"name": "bench", "steps": [{"id": "a", "type": "log", "message": "hi {{input.n}}"}]});
    let request = pb::SubmitRequest {
        workflow: Some(serde_json::from_value(workflow).expect("a workflow object")),
        input: Some(serde_json::from_value(serde_json::json!({"n": 1})).expect("an input object")),
        ..Default::default()
    };
    let message = request.encode_to_vec();
    let mut body = Vec::with_capacity(message.len() + 5);
    body.push(0); // not compressed
    body.extend_from_slice(&(message.len() as u32).to_be_bytes());
    body.extend_from_slice(&message);
    std::io::stdout()
        .write_all(&body)
        .expect("stdout takes the body");
}
