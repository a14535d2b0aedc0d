//! The protobuf codec of the `prescient.v1` services (wired in by
//! `build.rs` through `codec_path`): tonic_prost's, except that a message
//! that does not decode, such as a `string` field holding bytes that are not
//! UTF-8, is the sender's bad input. tonic_prost answers INTERNAL, which
//! gRPC reserves for the server's own faults and which tells the caller
//! nothing; this answers INVALID_ARGUMENT with prost's reason, which names
//! the field (`AcquireRequest.tenant: invalid string value: data is not
//! UTF-8 encoded (not valid protobuf)`). The
//! generated client uses the same codec, so a client that cannot decode a
//! response sees INVALID_ARGUMENT too.

use std::marker::PhantomData;

use prost::Message;
use tonic::Status;
use tonic::codec::{Codec, DecodeBuf, Decoder};
use tonic_prost::{ProstCodec, ProstEncoder};

/// Encodes as tonic_prost does; decodes with [`ProtoDecoder`].
#[derive(Debug, Clone)]
pub struct ProtoCodec<T, U>(ProstCodec<T, U>);

impl<T, U> Default for ProtoCodec<T, U> {
    fn default() -> Self {
        Self(ProstCodec::default())
    }
}

impl<T, U> Codec for ProtoCodec<T, U>
where
    T: Message + Send + 'static,
    U: Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = ProstEncoder<T>;
    type Decoder = ProtoDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        self.0.encoder()
    }

    fn decoder(&mut self) -> Self::Decoder {
        ProtoDecoder(PhantomData)
    }
}

/// Decodes a `U`; a message that is not valid protobuf for `U` is
/// INVALID_ARGUMENT.
#[derive(Debug, Clone)]
pub struct ProtoDecoder<U>(PhantomData<U>);

impl<U: Message + Default> Decoder for ProtoDecoder<U> {
    type Item = U;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<U>, Status> {
        U::decode(buf).map(Some).map_err(|e| {
            // Lead with the field, as every other error does.
            let reason = e.to_string();
            let reason = reason
                .strip_prefix("failed to decode Protobuf message: ")
                .unwrap_or(&reason);
            Status::invalid_argument(format!("{reason} (not valid protobuf)"))
        })
    }
}
