package lab;

import java.net.URI;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;

import software.amazon.awssdk.auth.credentials.AwsBasicCredentials;
import software.amazon.awssdk.auth.credentials.StaticCredentialsProvider;
import software.amazon.awssdk.core.SdkBytes;
import software.amazon.awssdk.http.Protocol;
import software.amazon.awssdk.http.apache.ApacheHttpClient;
import software.amazon.awssdk.http.nio.netty.NettyNioAsyncHttpClient;
import software.amazon.awssdk.regions.Region;
import software.amazon.awssdk.services.kinesis.KinesisAsyncClient;
import software.amazon.awssdk.services.kinesis.KinesisClient;
import software.amazon.awssdk.services.kinesis.model.GetRecordsResponse;
import software.amazon.awssdk.services.kinesis.model.PutRecordsRequestEntry;
import software.amazon.awssdk.services.kinesis.model.PutRecordsResponse;
import software.amazon.awssdk.services.kinesis.model.Shard;
import software.amazon.awssdk.services.kinesis.model.ShardIteratorType;

/**
 * Puts records with the async client (as the connector's sink does), then reads them back with
 * the sync client (as its polling source does), and prints one JSON line with what happened.
 * Fake keys only: the endpoint must be a local emulator.
 */
public final class KinesisEmulatorCheck {
    public static void main(String[] args) throws Exception {
        URI endpoint = URI.create(args[0]);
        String host = endpoint.getHost();
        if (!host.equals("127.0.0.1") && !host.equals("localhost")) {
            throw new IllegalArgumentException("only a loopback emulator endpoint is allowed");
        }
        Region region = Region.of(args[1]);
        String stream = args[2];
        StaticCredentialsProvider keys = StaticCredentialsProvider.create(
                AwsBasicCredentials.create("testing", "testing"));
        String step = "start";
        try (KinesisAsyncClient sink = KinesisAsyncClient.builder().endpointOverride(endpoint)
                     .region(region).credentialsProvider(keys)
                     // HTTP/1.1 as the connector uses with aws.http.protocol.version=HTTP1_1:
                     // the async Kinesis client defaults to HTTP/2, which emulators lack.
                     .httpClientBuilder(NettyNioAsyncHttpClient.builder()
                             .protocol(Protocol.HTTP1_1)).build();
             KinesisClient source = KinesisClient.builder().endpointOverride(endpoint)
                     .region(region).credentialsProvider(keys)
                     .httpClientBuilder(ApacheHttpClient.builder()).build()) {
            step = "PutRecords";
            List<PutRecordsRequestEntry> entries = new ArrayList<>();
            for (int i = 0; i < 10; i++) {
                entries.add(PutRecordsRequestEntry.builder().partitionKey("example.com")
                        .data(SdkBytes.fromString("{\"n\": " + i + "}", StandardCharsets.UTF_8))
                        .build());
            }
            PutRecordsResponse put = sink.putRecords(b -> b.streamName(stream).records(entries))
                    .get();
            step = "DescribeStreamSummary";
            String arn = source.describeStreamSummary(b -> b.streamName(stream))
                    .streamDescriptionSummary().streamARN();
            step = "ListShards";
            List<Shard> shards = source.listShards(b -> b.streamARN(arn)).shards();
            int read = 0;
            for (Shard shard : shards) {
                step = "GetShardIterator";
                String it = source.getShardIterator(b -> b.streamARN(arn).shardId(shard.shardId())
                        .shardIteratorType(ShardIteratorType.TRIM_HORIZON)).shardIterator();
                step = "GetRecords";
                final String iterator = it;
                GetRecordsResponse got = source.getRecords(b -> b.streamARN(arn)
                        .shardIterator(iterator).limit(1000));
                read += got.records().size();
            }
            System.out.printf("{\"ok\": true, \"put_failed\": %d, \"shards\": %d, \"read\": %d,"
                    + " \"cbor\": \"%s\"}%n", put.failedRecordCount(), shards.size(), read,
                    System.getProperty("aws.cborEnabled", "default"));
        } catch (Exception e) {
            Throwable root = e;
            while (root.getCause() != null) {
                root = root.getCause();
            }
            System.out.printf("{\"ok\": false, \"step\": \"%s\", \"error\": \"%s\", \"cbor\": \"%s\"}%n",
                    step, String.valueOf(root).replace("\"", "'").replace("\n", " "),
                    System.getProperty("aws.cborEnabled", "default"));
        }
    }
}
