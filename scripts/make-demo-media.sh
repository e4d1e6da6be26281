#!/usr/bin/env bash
# Makes the demo video that `eddy up` serves (committed under crates/eddy-demo/media/vod, so
# nobody needs ffmpeg to run the demo): 12 s of ffmpeg's test picture and a 440 Hz tone, three
# H.264 renditions (720p 1200k, 480p 600k, 360p 300k) and one AAC track, as CMAF fMP4 segments of
# 2 s, each made of four 0.5 s fragments (the parts the live LL-HLS packager cuts), described
# both by an HLS multivariant playlist and by a DASH MPD over the same segments.
#
#   bash scripts/make-demo-media.sh          (needs ffmpeg: apt-get install -y ffmpeg)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=crates/eddy-demo/media/vod
command -v ffmpeg >/dev/null || { echo "make-demo-media: ffmpeg is needed (apt-get install -y ffmpeg)" >&2; exit 1; }
rm -rf "$OUT" && mkdir -p "$OUT"
(
  cd "$OUT"
  ffmpeg -hide_banner -loglevel error -y \
    -f lavfi -i testsrc2=size=1280x720:rate=30:duration=12 \
    -f lavfi -i sine=frequency=440:sample_rate=48000:duration=12 \
    -filter_complex "[0:v]split=3[v1][v2][v3];[v1]scale=1280:720[v1o];[v2]scale=854:480[v2o];[v3]scale=640:360[v3o]" \
    -map "[v1o]" -map "[v2o]" -map "[v3o]" -map 1:a \
    -c:v libx264 -threads 1 -preset veryfast -profile:v main -pix_fmt yuv420p -g 60 -keyint_min 60 -sc_threshold 0 \
    -b:v:0 1200k -maxrate:v:0 1300k -bufsize:v:0 2400k \
    -b:v:1 600k -maxrate:v:1 660k -bufsize:v:1 1200k \
    -b:v:2 300k -maxrate:v:2 330k -bufsize:v:2 600k \
    -c:a aac -b:a 64k -ac 2 \
    -f dash -seg_duration 2 -frag_duration 0.5 -frag_type duration -use_template 1 -use_timeline 0 \
    -hls_playlist 1 -hls_master_name master.m3u8 -adaptation_sets "id=0,streams=v id=1,streams=a" \
    -init_seg_name 'init-$RepresentationID$.m4s' -media_seg_name 'seg-$RepresentationID$-$Number%03d$.m4s' \
    manifest.mpd
  # The media playlists: VOD, without the wall-clock dates of the run (so a re-run differs only
  # where the encoder does), no blank lines.
  for p in media_*.m3u8; do
    grep -v '^#EXT-X-PROGRAM-DATE-TIME' "$p" | sed '/^$/d' \
      | sed 's/^#EXT-X-TARGETDURATION:\(.*\)$/#EXT-X-TARGETDURATION:\1\n#EXT-X-PLAYLIST-TYPE:VOD/' >"$p.new"
    mv "$p.new" "$p"
  done
  sed -i '/^$/d' master.m3u8
)
du -sh "$OUT"
ls "$OUT" | wc -l
