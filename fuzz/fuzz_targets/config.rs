//! Arbitrary bytes (UTF-8, lossily) → `BertConfig::from_json_str`; an
//! accepted config must also answer `parameter_count` and `head_dim`.
#![no_main]

use bert_wgpu::BertConfig;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(cfg) = BertConfig::from_json_str(&text) {
        let _ = cfg.parameter_count();
        let d = cfg.head_dim();
        assert_eq!(d * cfg.num_attention_heads, cfg.hidden_size);
        assert!(cfg.num_labels > 0);
        for i in 0..cfg.num_labels.min(4) {
            let _ = cfg.label_name(i);
        }
    }
});
