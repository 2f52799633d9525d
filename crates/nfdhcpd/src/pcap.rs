//! Minimal reader of classic pcap files (the fixtures captured from real clients, and
//! the fuzz corpus seeds). Only Ethernet link type, either byte order.

pub fn frames(data: &[u8]) -> Option<Vec<&[u8]>> {
    if data.len() < 24 {
        return None;
    }
    let magic = u32::from_le_bytes(data[0..4].try_into().ok()?);
    let le = match magic {
        0xa1b2_c3d4 | 0xa1b2_3c4d => true,
        0xd4c3_b2a1 | 0x4d3c_b2a1 => false,
        _ => return None,
    };
    let u32_at = |b: &[u8], i: usize| -> Option<u32> {
        let a: [u8; 4] = b.get(i..i + 4)?.try_into().ok()?;
        Some(if le {
            u32::from_le_bytes(a)
        } else {
            u32::from_be_bytes(a)
        })
    };
    if u32_at(data, 20)? != 1 {
        return None; // not Ethernet
    }
    let mut out = Vec::new();
    let mut i = 24;
    while i + 16 <= data.len() {
        let caplen = u32_at(data, i + 8)? as usize;
        let start = i + 16;
        out.push(data.get(start..start + caplen)?);
        i = start + caplen;
    }
    Some(out)
}
