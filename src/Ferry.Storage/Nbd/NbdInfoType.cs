namespace Ferry.Storage.Nbd;

/// <summary>proto.md NBD_REP_INFO's information types.</summary>
internal enum NbdInfoType : ushort
{
    Export = 0,
    Name = 1,
    Description = 2,
    BlockSize = 3,
}
