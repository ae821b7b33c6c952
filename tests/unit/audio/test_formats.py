import io
import wave

from tts_trio.audio.encoding import choose_encoding
from tts_trio.audio.formats import AudioFormat, frame_aligned, split_chunks, streaming_wav_header, wav_file

FMT = AudioFormat(sample_rate=22050)


def test_wav_file_has_exact_header() -> None:
    pcm = b"\x01\x02" * 1000
    with wave.open(io.BytesIO(wav_file(FMT, pcm))) as reader:
        assert (reader.getframerate(), reader.getsampwidth(), reader.getnchannels()) == (22050, 2, 1)
        assert reader.getnframes() == 1000
        assert reader.readframes(1000) == pcm


def test_streaming_header_is_open_ended_and_readable() -> None:
    header = streaming_wav_header(FMT)
    assert len(header) == 44
    assert header[4:8] == b"\xff\xff\xff\xff"
    assert header[40:44] == b"\xff\xff\xff\xff"
    pcm = b"\x00\x01" * 500
    with wave.open(io.BytesIO(header + pcm)) as reader:
        assert reader.getframerate() == 22050
        assert reader.readframes(10_000) == pcm  # reads to the end of the data


def test_split_chunks_and_frame_alignment() -> None:
    assert frame_aligned(4097, FMT) == 4096
    assert frame_aligned(1, FMT) == 2
    pieces = list(split_chunks(b"x" * 10_000, 4096))
    assert [len(piece) for piece in pieces] == [4096, 4096, 1808]


def test_format_description_names_everything_a_client_needs() -> None:
    described = FMT.describe("wav")
    assert described == {
        "container": "wav",
        "encoding": "pcm_s16le",
        "sample_rate": 22050,
        "sample_width": 2,
        "channels": 1,
    }
    assert choose_encoding("pcm", None, FMT).headers(FMT)["X-Audio-Sample-Rate"] == "22050"
