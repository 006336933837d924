namespace ProtoPNet.Service.Apis;

/// <summary>Marks an endpoint that reads image uploads itself, so the OpenAPI document can describe its request body.</summary>
public sealed record ImageUploadMetadata(bool Multiple);
