//! The sensor's reading of an AWS request, with no server around it: where the signature is and
//! what it claims (`sigv4`), which protocol and operation the request is (`protocol`), and whether
//! it is still current (`freshness`). Every input is caller bytes; the server's sensor listener
//! and the fuzz target `sensor_request` call the same functions.

pub mod freshness;
pub mod protocol;
pub mod sigv4;
