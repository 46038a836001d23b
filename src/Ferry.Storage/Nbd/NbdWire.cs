namespace Ferry.Storage.Nbd;

/// <summary>
/// Numbers of the NBD protocol, as the NBD project's doc/proto.md defines them. All integers on the wire
/// are big-endian. Section names below are proto.md's.
/// </summary>
internal static class NbdWire
{
    // "Newstyle negotiation": the server greets with NBDMAGIC then IHAVEOPT; IHAVEOPT also starts every option.
    public const ulong InitMagic = 0x4e42444d41474943; // "NBDMAGIC"
    public const ulong OptionMagic = 0x49484156454F5054; // "IHAVEOPT"

    // "Fixed newstyle negotiation": every option reply starts with this magic.
    public const ulong OptionReplyMagic = 0x3e889045565a9;

    // "Request message", "Simple reply message", "Structured reply chunk message".
    public const uint RequestMagic = 0x25609513;
    public const uint SimpleReplyMagic = 0x67446698;
    public const uint StructuredReplyMagic = 0x668e33ef;

    // "Handshake flags" (server, 16 bits) and "Client flags" (32 bits).
    public const ushort FlagFixedNewstyle = 1 << 0;
    public const ushort FlagNoZeroes = 1 << 1;
    public const uint ClientFlagFixedNewstyle = 1 << 0;
    public const uint ClientFlagNoZeroes = 1 << 1;
    public const uint KnownClientFlags = ClientFlagFixedNewstyle | ClientFlagNoZeroes;

    // Frame sizes.
    public const int GreetingSize = 8 + 8 + 2;
    public const int ClientFlagsSize = 4;
    public const int OptionHeaderSize = 8 + 4 + 4;
    public const int OptionReplyHeaderSize = 8 + 4 + 4 + 4;
    public const int RequestHeaderSize = 4 + 2 + 2 + 8 + 8 + 4;
    public const int SimpleReplyHeaderSize = 4 + 4 + 8;
    public const int StructuredReplyHeaderSize = 4 + 2 + 2 + 8 + 4;

    /// <summary>NBD_OPT_EXPORT_NAME's reply: size, transmission flags, then 124 zero bytes unless NO_ZEROES.</summary>
    public const int ExportNameReplyPadding = 124;

    // "Size constraints": the sizes we advertise with NBD_INFO_BLOCK_SIZE. A regular file needs no
    // alignment, 4 KiB avoids read-modify-write in the page cache, 32 MiB is the interoperable payload limit.
    public const uint MinimumBlockSize = 1;
    public const uint PreferredBlockSize = 4096;
    public const uint MaxPayload = 32 << 20;

    /// <summary>"Option types": strings (names, queries) are at most 4096 bytes.</summary>
    public const int MaxStringLength = 4096;

    /// <summary>Largest option data we buffer; longer options are skipped and refused (they can only be abuse).</summary>
    public const int MaxOptionLength = 64 << 10;

    // "NBD_REPLY_TYPE_*" ("Structured reply types") and the one reply flag.
    public const ushort ReplyFlagDone = 1;
    public const ushort ReplyTypeNone = 0;
    public const ushort ReplyTypeOffsetData = 1;
    public const ushort ReplyTypeBlockStatus = 5;
    public const ushort ReplyTypeError = (1 << 15) + 1;

    // "The base: metadata namespace".
    public const string MetaContextNamespaceBase = "base:";
    public const string MetaContextBaseAllocation = "base:allocation";

    /// <summary>Our id for base:allocation, the only context we offer (ids are opaque to clients).</summary>
    public const uint BaseAllocationContextId = 1;

    // NBD_STATE_* of base:allocation.
    public const uint StateHole = 1;
    public const uint StateZero = 2;
}
