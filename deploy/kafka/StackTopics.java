// Creates topics on the local Apache Kafka broker and waits until every one is in the metadata
// with its partitions led. Run by deploy/local/stack.sh (and tests/integration/stack) with the
// broker's jars, as a single-file program (no build step):
//
//   java -cp '.local/kafka/libs/*' deploy/kafka/StackTopics.java BOOTSTRAP [CLIENT_PROPS] NAME=PARTITIONS...
//
// A topic that exists already with the same partition count is fine (start is idempotent); one
// with another count is an error. Replication factor 1 (one broker), or -Dtopup.replication=N
// (deploy/local/kafka-cluster.sh: 3). Exit 0 when all exist.
import java.io.FileInputStream;
import java.util.*;
import java.util.concurrent.ExecutionException;
import org.apache.kafka.clients.admin.*;
import org.apache.kafka.common.errors.TopicExistsException;

public class StackTopics {
    public static void main(String[] args) throws Exception {
        if (args.length < 1) {
            System.err.println("usage: StackTopics BOOTSTRAP [CLIENT_PROPS] NAME=PARTITIONS...");
            System.exit(2);
        }
        Properties p = new Properties();
        int first = 1;
        if (args.length > 1 && !args[1].contains("=")) {
            try (FileInputStream in = new FileInputStream(args[1])) {
                p.load(in);
            }
            first = 2;
        }
        p.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, args[0]);
        p.put(AdminClientConfig.REQUEST_TIMEOUT_MS_CONFIG, "30000");
        p.put(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, "60000");
        Map<String, Integer> want = new LinkedHashMap<>();
        for (int i = first; i < args.length; i++) {
            String[] kv = args[i].split("=", 2);
            want.put(kv[0], Integer.parseInt(kv[1]));
        }
        try (Admin admin = Admin.create(p)) {
            List<NewTopic> news = new ArrayList<>();
            for (Map.Entry<String, Integer> e : want.entrySet()) {
                news.add(new NewTopic(e.getKey(), e.getValue(),
                                     (short) (int) Integer.getInteger("topup.replication", 1)));
            }
            CreateTopicsResult r = admin.createTopics(news);
            for (Map.Entry<String, ?> e : r.values().entrySet()) {
                try {
                    r.values().get(e.getKey()).get();
                } catch (ExecutionException x) {
                    if (!(x.getCause() instanceof TopicExistsException)) {
                        System.err.println("create " + e.getKey() + ": " + x.getCause());
                        System.exit(1);
                    }
                }
            }
            long deadline = System.currentTimeMillis() + 60000;
            for (;;) {
                Map<String, TopicDescription> d =
                    admin.describeTopics(want.keySet()).allTopicNames().get();
                String bad = null;
                for (Map.Entry<String, Integer> e : want.entrySet()) {
                    TopicDescription t = d.get(e.getKey());
                    if (t.partitions().size() != e.getValue()) {
                        System.err.println("topic " + e.getKey() + " exists with "
                                           + t.partitions().size() + " partitions, not "
                                           + e.getValue());
                        System.exit(1);
                    }
                    for (var part : t.partitions()) {
                        if (part.leader() == null || part.leader().isEmpty()) {
                            bad = e.getKey();
                        }
                    }
                }
                if (bad == null) {
                    break;
                }
                if (System.currentTimeMillis() > deadline) {
                    System.err.println("topic " + bad + " has a partition without a leader after 60 s");
                    System.exit(1);
                }
                Thread.sleep(100);
            }
        }
        System.out.println("topics ready: " + want.size());
    }
}
