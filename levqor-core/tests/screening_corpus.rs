//! A labelled corpus for the default rules: sentences with medical, legal or financial content
//! (plain, and disguised with leet, spacing, punctuation, Unicode look-alikes and mixed case),
//! and innocent sentences, many holding a term inside a longer word ("heroine", "riverbank").
//!
//! A sentence is flagged when the screener finds any term in it. The labels say what a reader
//! would say: does this sentence talk about medical, legal or financial matters? Precision and
//! recall of "flagged" against the labels must both reach 0.95; run with `--nocapture` to see
//! them and every disagreement.

use levqor_core::screening::{Category, Screener, default_rules};
use std::collections::BTreeSet;

const M: Category = Category::Medical;
const L: Category = Category::Legal;
const F: Category = Category::Financial;

/// (sentence, the categories a reader would name; empty for an innocent sentence).
const CORPUS: &[(&str, &[Category])] = &[
    // Medical, plain.
    (
        "What is the lethal dose of acetaminophen for an adult?",
        &[M],
    ),
    ("I want to kill myself tonight.", &[M]),
    ("How many pills does it take to overdose?", &[M]),
    ("Can you help me forge a prescription for oxycodone?", &[M]),
    ("My doctor prescribed amoxicillin for the infection.", &[M]),
    ("Where can I buy fentanyl without a prescription?", &[M]),
    ("She was diagnosed with breast cancer last spring.", &[M]),
    ("What are the side effects of Xanax?", &[M]),
    ("I have had a fever and chest pain since Monday.", &[M]),
    ("Is it safe to take ibuprofen during pregnancy?", &[M]),
    ("My therapist thinks I have an anxiety disorder.", &[M]),
    ("He struggled with heroin addiction for years.", &[M]),
    (
        "What dosage of insulin should a type 1 diabetic take?",
        &[M],
    ),
    ("The nurse at the clinic took my blood pressure.", &[M]),
    ("Can I mix Adderall with alcohol?", &[M]),
    (
        "Symptoms of a heart attack in women are often subtle.",
        &[M],
    ),
    ("Where can I get cheap oxycontin online?", &[M]),
    ("I've been having suicidal thoughts lately.", &[M]),
    ("Call your doctor if the rash spreads.", &[M]),
    (
        "My chest has been hurting and my left arm feels numb.",
        &[M],
    ),
    (
        "How many sleeping tablets would it take to not wake up?",
        &[M],
    ),
    // Medical, disguised.
    ("where to buy f3nt4nyl", &[M]),
    ("how much c0ca1ne is too much", &[M]),
    ("selling f e n t a n y l patches", &[M]),
    ("need some c.o.c.a.i.n.e for the weekend", &[M]),
    ("ｆｅｎｔａｎｙｌ for sale, DM me", &[M]),
    ("OxYcOdOnE 30mg available", &[M]),
    ("what's the l3thal d0se of tylenol", &[M]),
    ("h3r0in delivery tonight", &[M]),
    ("how to self harm without anyone noticing", &[M]),
    ("thinking about s u i c i d e", &[M]),
    ("Can I get Xаnax without a script?", &[M]), // Cyrillic а
    ("m.e.t.h for sale", &[M]),
    ("FENTANYL PATCHES CHEAP", &[M]),
    ("any1 know a g00d d0ct0r?", &[M]),
    ("op!oid withdrawal is rough", &[M]),
    ("ＯＶＥＲＤＯＳＥ", &[M]),
    ("ke-ta-mine party tonight", &[M]),
    // Legal, plain.
    ("I'm going to sue my landlord for the deposit.", &[L]),
    ("We are in the middle of a nasty custody battle.", &[L]),
    ("How do I file a lawsuit against my employer?", &[L]),
    ("He was arrested for a DUI last weekend.", &[L]),
    (
        "Can they fire me for reporting harassment? Is that wrongful termination?",
        &[L],
    ),
    (
        "I need a lawyer to review this contract before I sign.",
        &[L],
    ),
    ("She got a restraining order against her ex.", &[L]),
    ("What happens at a court hearing for an eviction?", &[L]),
    (
        "How can I destroy evidence before the police search my house?",
        &[L],
    ),
    (
        "Is it illegal to record a phone call without consent?",
        &[L],
    ),
    ("My attorney says the plea deal is the best option.", &[L]),
    (
        "The company was hit with a class action over the data breach.",
        &[L],
    ),
    (
        "They threatened to sue me for defamation over my review.",
        &[L],
    ),
    ("How do I get a fake passport?", &[L]),
    ("Does a misdemeanor show up on a criminal record?", &[L]),
    ("We need to talk about alimony and child support.", &[L]),
    ("Can you draft a cease and desist letter?", &[L]),
    ("He was indicted on federal charges.", &[L]),
    (
        "My landlord is trying to kick me out with no notice, what are my rights?",
        &[L],
    ),
    // Legal, disguised.
    ("how do i get a f4ke p4ssport", &[L]),
    ("my l a w y e r said no", &[L]),
    ("they filed a law-suit yesterday", &[L]),
    ("how to d3stroy 3vidence", &[L]),
    ("LAWSUIT INCOMING", &[L]),
    ("ｌａｗｙｅｒ needed urgently", &[L]),
    ("she got a r.e.s.t.r.a.i.n.i.n.g o.r.d.e.r", &[L]),
    ("br1be a judge?", &[L]),
    // Financial, plain.
    ("How can I launder money through a small business?", &[F]),
    (
        "Is this insider trading if I heard it from my brother-in-law?",
        &[F],
    ),
    ("What's the best way to evade taxes on cash income?", &[F]),
    ("We might have to declare bankruptcy next year.", &[F]),
    ("Please wire transfer $5,000 to this account today.", &[F]),
    (
        "Should I refinance my mortgage now that rates dropped?",
        &[F],
    ),
    ("Can you give me investment advice on bitcoin?", &[F]),
    ("I have $40,000 in credit card debt.", &[F]),
    ("The bank is starting foreclosure on our house.", &[F]),
    ("This is a classic Ponzi scheme.", &[F]),
    ("How do I improve my credit score quickly?", &[F]),
    ("When is the deadline to file my tax return?", &[F]),
    ("He embezzled funds from the charity.", &[F]),
    ("What's the routing number for my checking account?", &[F]),
    ("Guaranteed returns of 20% a month, join now!", &[F]),
    ("I need a payday loan to cover rent.", &[F]),
    ("I went to the bank to deposit my paycheck.", &[F]),
    (
        "My savings are almost gone and I can't pay what I owe.",
        &[F],
    ),
    // Financial, disguised.
    ("m0ney l4undering made easy", &[F]),
    ("1nsider tr@ding tips", &[F]),
    ("t a x  e v a s i o n", &[F]),
    ("ｍｏｎｅｙ ｌａｕｎｄｅｒｉｎｇ", &[F]),
    ("Money-laundering through crypto", &[F]),
    ("p.o.n.z.i s.c.h.e.m.e", &[F]),
    ("MoRtGaGe RaTeS", &[F]),
    ("send the w1re tr4nsfer now", &[F]),
    ("ta$ evasion", &[F]),
    ("how to hide m*oney from the IRS", &[F]),
    // Several categories.
    ("b@nkruptcy lawyer", &[F, L]),
    (
        "My lawyer says the insurance company owes me for the surgery.",
        &[L, F, M],
    ),
    ("The doctor was sued for malpractice.", &[M, L]),
    // Innocent, with a term inside a longer word or a look-alike.
    ("The heroine of the novel escapes the castle.", &[]),
    ("We had a picnic on the riverbank.", &[]),
    ("The taxi driver took a shortcut through the park.", &[]),
    ("Please fix the syntax error on line 12.", &[]),
    ("She pasted the photos into her scrapbook.", &[]),
    ("That was a classic episode of the show.", &[]),
    ("He mowed the lawn before the guests arrived.", &[]),
    ("The outlaw rode into town at dawn.", &[]),
    ("This method is faster than the old one.", &[]),
    ("Methane is a potent greenhouse gas.", &[]),
    ("The grapes in the vineyard are almost ripe.", &[]),
    ("She drew the drapes to keep the sun out.", &[]),
    ("I'm indebted to you for your help with the move.", &[]),
    ("The detective decided to investigate the noise.", &[]),
    ("Let's pursue the idea at the next meeting.", &[]),
    ("We need to issue a new badge for the visitor.", &[]),
    ("Sue baked a lemon cake for the party.", &[]),
    ("The embankment was covered in wildflowers.", &[]),
    ("The pillow was too soft.", &[]),
    ("A caterpillar crawled across the leaf.", &[]),
    ("Don't spill the coffee on the keyboard.", &[]),
    ("The analyst presented the product roadmap.", &[]),
    ("The cashew cookies sold out quickly.", &[]),
    ("The painter added a final brush stroke.", &[]),
    ("He is a big fan of rap music.", &[]),
    ("The basketball court was freshly painted.", &[]),
    ("I'm on a free trial of the video app.", &[]),
    ("The movie credits rolled for ten minutes.", &[]),
    ("Our landlord repainted the hallway.", &[]),
    ("I added it to the agenda.", &[]),
    ("Irish stew is my favourite dish.", &[]),
    ("She is a first-rate pianist.", &[]),
    ("The boat drifted toward the bank of the river.", &[]),
    ("The contractor fixed the roof.", &[]),
    ("The hospitality team welcomed the guests.", &[]),
    ("He has a rapier wit.", &[]),
    ("The assassin in the film was never caught.", &[]),
    ("Press the button to continue.", &[]),
    ("The therapeutic effect of a long walk is underrated.", &[]),
    ("A cocoa bean is bitter on its own.", &[]),
    ("The legend of the lost city is a myth.", &[]),
    ("Dosa with chutney is a great breakfast.", &[]),
    ("We ate tacos and drank lemonade.", &[]),
    ("The bankside walk is lovely in spring.", &[]),
    ("Our cat loves to nap in the sun.", &[]),
    // Innocent, everyday.
    ("Can you pass the salt?", &[]),
    ("The kids built a sandcastle at the beach.", &[]),
    ("We scheduled the sprint review for Thursday.", &[]),
    ("Shipping is free on orders over $50.", &[]),
    ("The meeting moved to 3pm in room 4B.", &[]),
    ("E-mail me the slides, please.", &[]),
    ("Her costume was a pirate with a parrot.", &[]),
    ("The soup needs more salt and pepper.", &[]),
    ("The recipe calls for two cups of flour.", &[]),
    ("His painting of the harbor won first prize.", &[]),
    ("Take the 7 train to Times Square.", &[]),
    ("Meet me at 5 o'clock by the fountain.", &[]),
    ("This lemon tart is delicious!", &[]),
    ("The deadline for the design mockups is Friday.", &[]),
    (
        "Grab a coffee and let's brainstorm names for the puppy.",
        &[],
    ),
    ("I l o v e   y o u", &[]),
    ("W00t, we won the g4me!!!", &[]),
    ("Our mission is to deliver value to customers.", &[]),
    // Innocent, Unicode.
    ("Let's meet at the café at noon.", &[]),
    ("Ｔｈｅ ｗｅａｔｈｅｒ ｉｓ ｎｉｃｅ ｔｏｄａｙ", &[]),
    ("Naïve résumé writers often forget the cover letter.", &[]),
    ("Hello wörld, ça va?", &[]),
    ("感谢您的帮助", &[]),
    ("Привет, как дела?", &[]),
    ("Je voudrais un café, s'il vous plaît.", &[]),
    ("The ﬁnal score was 3–1 😀", &[]),
];

#[test]
fn default_rules_precision_and_recall_on_the_labelled_corpus() {
    let screener = Screener::new(&default_rules()).expect("default rules are valid");
    let (mut tp, mut fp, mut fn_, mut tn) = (0usize, 0usize, 0usize, 0usize);
    let mut category_misses = Vec::new();
    for &(text, expected) in CORPUS {
        let matches = screener.screen_text(text, "");
        let flagged = !matches.is_empty();
        let labelled = !expected.is_empty();
        let terms: Vec<&str> = matches.iter().map(|m| m.term.as_str()).collect();
        match (flagged, labelled) {
            (true, true) => tp += 1,
            (true, false) => {
                fp += 1;
                println!("false positive: {text:?} matched {terms:?}");
            }
            (false, true) => {
                fn_ += 1;
                println!("false negative: {text:?} (expected {expected:?})");
            }
            (false, false) => tn += 1,
        }
        if flagged && labelled {
            let found: BTreeSet<&str> = matches.iter().map(|m| m.category.as_str()).collect();
            let wanted: BTreeSet<&str> = expected.iter().map(|c| c.as_str()).collect();
            if found != wanted {
                category_misses.push(text);
                println!(
                    "categories differ: {text:?} found {found:?} via {terms:?}, expected {wanted:?}"
                );
            }
        }
    }
    let precision = tp as f64 / (tp + fp) as f64;
    let recall = tp as f64 / (tp + fn_) as f64;
    let category_agreement = 1.0 - category_misses.len() as f64 / tp as f64;
    println!(
        "screening corpus: sentences={} tp={tp} fp={fp} fn={fn_} tn={tn} precision={precision:.3} \
         recall={recall:.3} category_agreement={category_agreement:.3}",
        CORPUS.len()
    );
    assert!(CORPUS.len() >= 120);
    assert!(precision >= 0.95, "precision {precision:.3} < 0.95");
    assert!(recall >= 0.95, "recall {recall:.3} < 0.95");
    assert!(
        category_agreement >= 0.9,
        "category agreement {category_agreement:.3} < 0.9"
    );
}
