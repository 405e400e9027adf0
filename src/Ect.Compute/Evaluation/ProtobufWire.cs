using System.Buffers.Binary;

namespace Ect.Compute.Evaluation;

/// <summary>
/// One field of a protocol-buffer message: its number, wire type, value (varint, or the little-endian bits of a
/// fixed 64/32-bit field), the bytes of a length-delimited field, and where it lies in the message (so a rewriter can
/// copy it byte for byte).
/// </summary>
internal readonly record struct ProtobufField(int Number, int WireType, ulong Value, ReadOnlyMemory<byte> Bytes, int Start, int End);

/// <summary>
/// The protocol-buffer wire format, as much as the ONNX readers need (<see cref="OnnxGraph"/> reads a model,
/// <see cref="OnnxBatchAxis"/> rewrites one): no ONNX or protobuf package. Malformed input throws
/// <see cref="InvalidDataException"/> naming what is wrong; the callers add the file.
/// </summary>
internal static class ProtobufWire
{
    public static List<ProtobufField> Fields(ReadOnlyMemory<byte> b)
    {
        var fields = new List<ProtobufField>();
        int pos = 0;
        while (pos < b.Length)
        {
            int start = pos;
            ulong key = Varint(b.Span, ref pos);
            int number = (int)(key >> 3), wire = (int)(key & 7);
            switch (wire)
            {
                case 0: fields.Add(new ProtobufField(number, 0, Varint(b.Span, ref pos), default, start, pos)); break;
                case 1:
                case 5:
                    int width = wire == 1 ? 8 : 4;
                    if (pos + width > b.Length) throw new InvalidDataException($"truncated fixed-width field {number}");
                    ulong bits = wire == 1 ? BinaryPrimitives.ReadUInt64LittleEndian(b.Span[pos..]) : BinaryPrimitives.ReadUInt32LittleEndian(b.Span[pos..]);
                    pos += width;
                    fields.Add(new ProtobufField(number, wire, bits, default, start, pos));
                    break;
                case 2:
                    ulong len = Varint(b.Span, ref pos);
                    if (len > (ulong)(b.Length - pos)) throw new InvalidDataException($"field {number} claims {len} bytes, {b.Length - pos} left");
                    var payload = b.Slice(pos, (int)len);
                    pos += (int)len;
                    fields.Add(new ProtobufField(number, 2, 0, payload, start, pos));
                    break;
                default: throw new InvalidDataException($"unsupported protobuf wire type {wire} (field {number})");
            }
        }
        return fields;
    }

    public static ulong Varint(ReadOnlySpan<byte> b, ref int pos)
    {
        ulong result = 0;
        for (int shift = 0; shift < 64; shift += 7)
        {
            if (pos >= b.Length) throw new InvalidDataException("truncated varint");
            byte c = b[pos++];
            result |= (ulong)(c & 0x7f) << shift;
            if (c < 0x80) return result;
        }
        throw new InvalidDataException("varint longer than 10 bytes");
    }

    /// <summary>
    /// Copies <paramref name="message"/>; for each length-delimited field, <paramref name="rewrite"/> may return new
    /// payload bytes (null: copy the field unchanged, byte for byte).
    /// </summary>
    public static byte[] RewriteMessage(ReadOnlyMemory<byte> message, Func<int, ReadOnlyMemory<byte>, byte[]?> rewrite)
    {
        using var output = new MemoryStream(message.Length + 64);
        foreach (var f in Fields(message))
        {
            var replacement = f.WireType == 2 ? rewrite(f.Number, f.Bytes) : null;
            if (replacement is null) { output.Write(message.Span[f.Start..f.End]); continue; }
            WriteField(output, f.Number, replacement);
        }
        return output.ToArray();
    }

    /// <summary>Writes a length-delimited field (wire type 2).</summary>
    public static void WriteField(Stream output, int number, ReadOnlySpan<byte> payload)
    {
        WriteVarint(output, ((ulong)number << 3) | 2);
        WriteVarint(output, (ulong)payload.Length);
        output.Write(payload);
    }

    public static void WriteVarint(Stream output, ulong value)
    {
        while (value >= 0x80)
        {
            output.WriteByte((byte)(value | 0x80));
            value >>= 7;
        }
        output.WriteByte((byte)value);
    }
}
